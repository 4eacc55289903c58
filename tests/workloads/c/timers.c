/*
 * timers - interval timers, POSIX timers and clocks that must not go back.
 *
 * ITIMER_REAL and ITIMER_VIRTUAL with time left, a periodic POSIX timer
 * that signals the process (SIGEV_SIGNAL) and one that signals a chosen
 * thread (SIGEV_THREAD_ID), a one-shot POSIX timer a day away and a
 * disarmed one. All timer ids must stay valid. A sampler thread reads
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME every millisecond and fails if
 * either ever goes backwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define NSEC 1000000000LL
#define REAL_SEC (10 * 86400)
#define VIRTUAL_SEC 1000
#define VIRTUAL_INTERVAL_US 500000
#define PERIOD_NS 50000000LL
#define ONESHOT_SEC 86400

enum { T_PROCESS, T_THREAD, T_ONESHOT, T_DISARMED, NTIMERS };

static timer_t timers[NTIMERS];
static pthread_t sampler_thread, target_thread;
static volatile pid_t target_tid;
static volatile int stop_sampler;
static long long armed_ns, samples;
static int wake_pipe[2];

static void *sampler(void *arg)
{
	long long mono = wl_now_ns(CLOCK_MONOTONIC), boot = wl_now_ns(CLOCK_BOOTTIME);

	(void)arg;
	while (!__atomic_load_n(&stop_sampler, __ATOMIC_ACQUIRE)) {
		long long m = wl_now_ns(CLOCK_MONOTONIC), b = wl_now_ns(CLOCK_BOOTTIME);

		if (m < mono)
			wl_fail("CLOCK_MONOTONIC went back from %lld to %lld", mono, m);
		if (b < boot)
			wl_fail("CLOCK_BOOTTIME went back from %lld to %lld", boot, b);
		mono = m;
		boot = b;
		__atomic_add_fetch(&samples, 1, __ATOMIC_RELAXED);
		usleep(1000);
	}
	return NULL;
}

/* target waits for SIGRTMIN+2, which only the SIGEV_THREAD_ID timer sends to it. */
static void *target(void *arg)
{
	sigset_t set;
	siginfo_t si;
	char c;

	(void)arg;
	target_tid = gettid();
	while (read(wake_pipe[0], &c, 1) != 1)
		if (errno != EINTR)
			return NULL;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 2);
	if (sigtimedwait(&set, &si, &(struct timespec){ .tv_sec = WL_TIMEOUT_MS / 1000 }) !=
	    SIGRTMIN + 2)
		wl_fail("SIGEV_THREAD_ID timer: no signal reached its thread: %s", strerror(errno));
	else if (si.si_code != SI_TIMER || si.si_value.sival_int != 0xdef)
		wl_fail("SIGEV_THREAD_ID timer: code %d value %#x", si.si_code,
			si.si_value.sival_int);
	return NULL;
}

static void create_timer(int idx, int clock, struct sigevent *sev, long long value_ns,
			 long long interval_ns)
{
	struct itimerspec its = {
		.it_value = { value_ns / NSEC, value_ns % NSEC },
		.it_interval = { interval_ns / NSEC, interval_ns % NSEC },
	};

	if (timer_create(clock, sev, &timers[idx]) || timer_settime(timers[idx], 0, &its, NULL))
		wl_die("timer_create");
}

static void build_posix_timers(void)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };

	sev.sigev_value.sival_int = 0xabc;
	create_timer(T_PROCESS, CLOCK_MONOTONIC, &sev, PERIOD_NS, PERIOD_NS);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGRTMIN + 2;
	sev.sigev_value.sival_int = 0xdef;
	sev._sigev_un._tid = target_tid;
	create_timer(T_THREAD, CLOCK_MONOTONIC, &sev, PERIOD_NS, PERIOD_NS);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGRTMIN + 4;
	create_timer(T_ONESHOT, CLOCK_REALTIME, &sev, ONESHOT_SEC * NSEC, 0);
	create_timer(T_DISARMED, CLOCK_MONOTONIC, &sev, 0, 0);
}

static void build(void)
{
	struct itimerval real = { .it_value.tv_sec = REAL_SEC };
	struct itimerval virt = { .it_value.tv_sec = VIRTUAL_SEC,
				  .it_interval.tv_usec = VIRTUAL_INTERVAL_US };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	sigaddset(&set, SIGVTALRM);
	for (int sig = SIGRTMIN + 1; sig <= SIGRTMIN + 4; sig++)
		sigaddset(&set, sig);
	if (sigprocmask(SIG_BLOCK, &set, NULL) || pipe(wake_pipe))
		wl_die("sigprocmask");
	if (pthread_create(&sampler_thread, NULL, sampler, NULL) ||
	    pthread_create(&target_thread, NULL, target, NULL))
		wl_die("pthread_create");
	while (!target_tid)
		usleep(1000);
	armed_ns = wl_now_ns(CLOCK_MONOTONIC);
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL))
		wl_die("setitimer");
	build_posix_timers();
}

static void check_itimers(void)
{
	long long elapsed = wl_now_ns(CLOCK_MONOTONIC) - armed_ns, left;
	struct itimerval it;

	getitimer(ITIMER_REAL, &it);
	left = it.it_value.tv_sec * NSEC + it.it_value.tv_usec * 1000LL;
	/* Frozen time may count or not, but the timer must not gain time or lose any. */
	if (left <= 0 || left > REAL_SEC * NSEC || left + elapsed < REAL_SEC * NSEC - NSEC)
		wl_fail("ITIMER_REAL: %lld ns left after %lld ns of %d s", left, elapsed, REAL_SEC);
	getitimer(ITIMER_VIRTUAL, &it);
	left = it.it_value.tv_sec * NSEC + it.it_value.tv_usec * 1000LL;
	/* setitimer(2) adds one tick to a CPU timer's value; a tick is at most 10 ms (HZ=100). */
	if (left <= 0 || left > VIRTUAL_SEC * NSEC + 10000000LL ||
	    it.it_interval.tv_sec != 0 || it.it_interval.tv_usec != VIRTUAL_INTERVAL_US)
		wl_fail("ITIMER_VIRTUAL: %lld ns left, interval %ld.%06ld s", left,
			(long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec);
}

static void want_timer(int idx, long long min_ns, long long max_ns, long long interval_ns)
{
	struct itimerspec its;
	long long value, interval;

	if (timer_gettime(timers[idx], &its)) {
		wl_fail("timer %d: timer_gettime: %s", idx, strerror(errno));
		return;
	}
	value = its.it_value.tv_sec * NSEC + its.it_value.tv_nsec;
	interval = its.it_interval.tv_sec * NSEC + its.it_interval.tv_nsec;
	if (value < min_ns || value > max_ns || interval != interval_ns)
		wl_fail("timer %d: value %lld ns interval %lld ns, want [%lld, %lld] and %lld", idx,
			value, interval, min_ns, max_ns, interval_ns);
}

static void check_posix_timers(void)
{
	long long elapsed = wl_now_ns(CLOCK_MONOTONIC) - armed_ns;
	sigset_t set;
	siginfo_t si;

	want_timer(T_PROCESS, 1, PERIOD_NS, PERIOD_NS);
	want_timer(T_THREAD, 1, PERIOD_NS, PERIOD_NS);
	want_timer(T_ONESHOT, ONESHOT_SEC * NSEC - elapsed - NSEC, ONESHOT_SEC * NSEC, 0);
	want_timer(T_DISARMED, 0, 0, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 1);
	if (sigtimedwait(&set, &si, &(struct timespec){ .tv_sec = WL_TIMEOUT_MS / 1000 }) !=
	    SIGRTMIN + 1)
		wl_fail("SIGEV_SIGNAL timer: no signal: %s", strerror(errno));
	else if (si.si_code != SI_TIMER || si.si_value.sival_int != 0xabc)
		wl_fail("SIGEV_SIGNAL timer: code %d value %#x", si.si_code, si.si_value.sival_int);
	if (write(wake_pipe[1], "w", 1) != 1)
		wl_fail("wake target thread: %s", strerror(errno));
}

static void stop_threads(void)
{
	struct timespec deadline;
	long long before = __atomic_load_n(&samples, __ATOMIC_RELAXED);

	for (int i = 0; i < WL_TIMEOUT_MS && __atomic_load_n(&samples, __ATOMIC_RELAXED) < before + 5;
	     i++)
		usleep(1000);
	if (__atomic_load_n(&samples, __ATOMIC_RELAXED) < before + 5)
		wl_fail("clock sampler thread stopped sampling");
	__atomic_store_n(&stop_sampler, 1, __ATOMIC_RELEASE);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WL_TIMEOUT_MS / 1000;
	if (pthread_timedjoin_np(sampler_thread, NULL, &deadline) ||
	    pthread_timedjoin_np(target_thread, NULL, &deadline))
		wl_fail("join threads: timed out");
}

int main(void)
{
	wl_init();
	build();
	wl_ready();

	wl_wait_check();
	check_itimers();
	check_posix_timers();
	stop_threads();
	return wl_finish();
}
