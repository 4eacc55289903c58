/*
 * threads - threads blocked in different ways, each with its own state.
 *
 * The reader thread holds known values in the x87, SSE and (when the CPU
 * has it) AVX registers while it blocks in read(2) inside one asm block,
 * so the values must survive in the saved register state. The sleeper
 * blocks in a one-hour nanosleep(2) on a sigaltstack and is interrupted
 * at check time by a SIGUSR1 handler that must run on that stack. The
 * waiter blocks in FUTEX_WAIT. Every thread has its own TLS values,
 * signal mask, rounding mode and thread id, and checks them after it
 * wakes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fenv.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

enum { T_READER, T_SLEEPER, T_WAITER, NTHREADS };

#define SLEEP_SEC 3600
#define ALTSTACK_SIZE (64 * 1024)

struct thread {
	pthread_t handle;
	int idx;
	pid_t tid;
	sigset_t mask;
	volatile int started;
};

static struct thread threads[NTHREADS];
static int wake_pipe[2];
static uint32_t futex_word;
static volatile sig_atomic_t handler_ran, handler_on_altstack;
static char *altstack;

static __thread unsigned long tls_magic;
static __thread unsigned char tls_buf[256];

static const int round_mode[NTHREADS] = { FE_UPWARD, FE_TOWARDZERO, FE_DOWNWARD };

/* enter_thread sets the per-thread state that leave_thread checks. */
static void enter_thread(struct thread *t)
{
	sigset_t block;

	t->tid = gettid();
	tls_magic = 0x5eed0000UL + (unsigned long)t->idx;
	wl_fill(tls_buf, sizeof(tls_buf), 100 + (unsigned)t->idx, 0);
	fesetround(round_mode[t->idx]);
	sigemptyset(&block);
	sigaddset(&block, SIGRTMIN + t->idx);
	if (t->idx != T_SLEEPER)
		sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	pthread_sigmask(SIG_BLOCK, NULL, &t->mask);
	__atomic_store_n(&t->started, 1, __ATOMIC_RELEASE);
}

static void leave_thread(struct thread *t)
{
	sigset_t now;
	int sig;

	if (gettid() != t->tid)
		wl_fail("thread %d: gettid() = %d, want %d", t->idx, gettid(), t->tid);
	if (tls_magic != 0x5eed0000UL + (unsigned long)t->idx)
		wl_fail("thread %d: TLS word = %#lx", t->idx, tls_magic);
	if (wl_mismatch(tls_buf, sizeof(tls_buf), 100 + (unsigned)t->idx, 0) >= 0)
		wl_fail("thread %d: TLS buffer changed", t->idx);
	if (fegetround() != round_mode[t->idx])
		wl_fail("thread %d: rounding mode = %#x, want %#x", t->idx, fegetround(),
			round_mode[t->idx]);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	for (sig = 1; sig < NSIG; sig++)
		if (sigismember(&now, sig) != sigismember(&t->mask, sig))
			wl_fail("thread %d: signal %d blocked = %d, want %d", t->idx, sig,
				sigismember(&now, sig), sigismember(&t->mask, sig));
}

#define LOAD_YMM(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define SAVE_YMM(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
#define LOAD_XMM(n) "movdqu " #n "*16(%[in]), %%xmm" #n "\n\t"
#define SAVE_XMM(n) "movdqu %%xmm" #n ", " #n "*16(%[out])\n\t"
#define EACH16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
	M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define VEC_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
	"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"

/*
 * read_holding_avx loads ymm0-15 from in and st(0) from *x87_in, reads one
 * byte from fd with a raw syscall, then stores the registers to out and
 * *x87_out. No compiler code runs in between, so only the kernel (or a
 * restore) can change them.
 */
static long read_holding_avx(int fd, char *c, const unsigned char *in, unsigned char *out,
			     const double *x87_in, double *x87_out)
{
	long ret;

	asm volatile("fldl (%[fin])\n\t" EACH16(LOAD_YMM)
		     "syscall\n\t" EACH16(SAVE_YMM) "fstpl (%[fout])\n\t"
		     : "=a"(ret)
		     : "0"((long)SYS_read), "D"((long)fd), "S"(c), "d"(1L), [in] "r"(in),
		       [out] "r"(out), [fin] "r"(x87_in), [fout] "r"(x87_out)
		     : "rcx", "r11", "memory", VEC_CLOBBERS);
	return ret;
}

static long read_holding_sse(int fd, char *c, const unsigned char *in, unsigned char *out,
			     const double *x87_in, double *x87_out)
{
	long ret;

	asm volatile("fldl (%[fin])\n\t" EACH16(LOAD_XMM)
		     "syscall\n\t" EACH16(SAVE_XMM) "fstpl (%[fout])\n\t"
		     : "=a"(ret)
		     : "0"((long)SYS_read), "D"((long)fd), "S"(c), "d"(1L), [in] "r"(in),
		       [out] "r"(out), [fin] "r"(x87_in), [fout] "r"(x87_out)
		     : "rcx", "r11", "memory", VEC_CLOBBERS);
	return ret;
}

static void *reader(void *arg)
{
	static unsigned char in[16 * 32], out[16 * 32];
	int avx = __builtin_cpu_supports("avx");
	size_t n = avx ? 16 * 32 : 16 * 16;
	double x87_in = 2.718281828459045, x87_out = 0;
	struct thread *t = arg;
	long ret;
	char c;

	enter_thread(t);
	wl_fill(in, sizeof(in), 7, 0);
	if (avx)
		ret = read_holding_avx(wake_pipe[0], &c, in, out, &x87_in, &x87_out);
	else
		ret = read_holding_sse(wake_pipe[0], &c, in, out, &x87_in, &x87_out);
	if (ret != 1)
		wl_fail("reader: read(pipe) = %ld, want 1", ret);
	if (memcmp(in, out, n))
		wl_fail("reader: %s registers changed across the blocked read",
			avx ? "ymm" : "xmm");
	if (x87_out != x87_in)
		wl_fail("reader: st(0) = %.17g, want %.17g", x87_out, x87_in);
	leave_thread(t);
	return NULL;
}

static void on_sigusr1(int sig)
{
	char here;

	(void)sig;
	handler_ran = 1;
	handler_on_altstack = &here >= altstack && &here < altstack + ALTSTACK_SIZE;
}

static void check_altstack(void)
{
	stack_t ss;

	if (sigaltstack(NULL, &ss))
		wl_fail("sleeper: sigaltstack: %s", strerror(errno));
	else if (ss.ss_sp != altstack || ss.ss_size != ALTSTACK_SIZE || ss.ss_flags)
		wl_fail("sleeper: sigaltstack = %p+%zu flags %#x, want %p+%d flags 0",
			ss.ss_sp, ss.ss_size, ss.ss_flags, (void *)altstack, ALTSTACK_SIZE);
	if (!handler_ran)
		wl_fail("sleeper: SIGUSR1 handler did not run");
	else if (!handler_on_altstack)
		wl_fail("sleeper: SIGUSR1 handler did not run on the sigaltstack");
}

/* check_sleep checks nanosleep's result against the kernel's restart rules. */
static void check_sleep(int ret, int err, long long elapsed_ns, const struct timespec *rem)
{
	long long rem_ns = rem->tv_sec * 1000000000LL + rem->tv_nsec;
	long long req_ns = SLEEP_SEC * 1000000000LL;

	if (ret == 0) {
		if (elapsed_ns < req_ns)
			wl_fail("sleeper: nanosleep returned after %lld ns of %lld", elapsed_ns,
				req_ns);
		return;
	}
	if (err != EINTR) {
		wl_fail("sleeper: nanosleep: %s, want EINTR", strerror(err));
		return;
	}
	if (!handler_ran)
		wl_fail("sleeper: nanosleep returned EINTR, but no handler ran");
	if (rem_ns <= 0 || rem_ns > req_ns)
		wl_fail("sleeper: nanosleep remaining %lld ns, want (0, %lld]", rem_ns, req_ns);
	/* Time spent frozen may count or not, but time must never be skipped. */
	if (elapsed_ns + rem_ns < req_ns - 1000000000LL)
		wl_fail("sleeper: slept %lld ns with %lld ns left of %lld", elapsed_ns, rem_ns,
			req_ns);
}

static void *sleeper(void *arg)
{
	struct timespec req = { .tv_sec = SLEEP_SEC }, rem = { 0 };
	stack_t ss = { .ss_sp = altstack, .ss_size = ALTSTACK_SIZE };
	struct thread *t = arg;
	long long start;
	int ret, err;

	if (sigaltstack(&ss, NULL))
		wl_die("sigaltstack");
	enter_thread(t);
	start = wl_now_ns(CLOCK_MONOTONIC);
	ret = nanosleep(&req, &rem);
	err = errno;
	check_sleep(ret, err, wl_now_ns(CLOCK_MONOTONIC) - start, &rem);
	check_altstack();
	leave_thread(t);
	return NULL;
}

static void *waiter(void *arg)
{
	struct thread *t = arg;

	enter_thread(t);
	while (!__atomic_load_n(&futex_word, __ATOMIC_ACQUIRE)) {
		long r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);

		if (r && errno != EAGAIN && errno != EINTR) {
			wl_fail("waiter: FUTEX_WAIT: %s", strerror(errno));
			break;
		}
	}
	leave_thread(t);
	return NULL;
}

static void start_threads(void)
{
	void *(*body[NTHREADS])(void *) = { reader, sleeper, waiter };
	struct sigaction sa = { .sa_handler = on_sigusr1, .sa_flags = SA_ONSTACK };
	int i, j;

	altstack = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (altstack == MAP_FAILED)
		wl_die("mmap sigaltstack");
	if (sigaction(SIGUSR1, &sa, NULL) || pipe(wake_pipe))
		wl_die("set up SIGUSR1 and the wake pipe");
	for (i = 0; i < NTHREADS; i++) {
		threads[i].idx = i;
		errno = pthread_create(&threads[i].handle, NULL, body[i], &threads[i]);
		if (errno)
			wl_die("pthread_create");
	}
	/* Wait up to 5 s for the threads to set their state. */
	for (j = 0; j < 5000; j++) {
		for (i = 0; i < NTHREADS; i++)
			if (!__atomic_load_n(&threads[i].started, __ATOMIC_ACQUIRE))
				break;
		if (i == NTHREADS)
			return;
		usleep(1000);
	}
	errno = ETIMEDOUT;
	wl_die("start threads");
}

static void wake_threads(void)
{
	char c = 'w';

	if (write(wake_pipe[1], &c, 1) != 1)
		wl_fail("write wake pipe: %s", strerror(errno));
	__atomic_store_n(&futex_word, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_kill(threads[T_SLEEPER].handle, SIGUSR1);
}

static void join_threads(void)
{
	struct timespec deadline;
	int i, err;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WL_TIMEOUT_MS / 1000;
	for (i = 0; i < NTHREADS; i++) {
		err = pthread_timedjoin_np(threads[i].handle, NULL, &deadline);
		if (err)
			wl_fail("join thread %d (tid %d): %s", i, threads[i].tid, strerror(err));
	}
}

int main(void)
{
	wl_init();
	start_threads();
	wl_ready();
	wl_wait_check();
	wake_threads();
	join_threads();
	return wl_finish();
}
