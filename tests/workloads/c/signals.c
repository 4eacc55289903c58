/*
 * signals - signal dispositions, masks and pending signals.
 *
 * Handlers with SA_SIGINFO, SA_RESTART, SA_NODEFER, SA_RESETHAND and
 * SA_NOCLDSTOP and their masks, ignored signals, a blocked mask, a
 * standard signal pending for the process (sent twice, so it must stay
 * one), a signal pending for the main thread only, one pending for a
 * worker thread only, and three real-time signals queued with sigqueue
 * data that must come out in order. A blocked SIGTRAP with a handler
 * must stay pending: the restore blocks it while it injects calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

/* SA_RESTORER is the kernel flag glibc adds to every handler it installs; it is not in <signal.h>. */
#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

struct disposition {
	int sig;
	void *handler;
	int flags;
	int mask_sig;
};

static volatile sig_atomic_t usr1_code, usr1_masked_ok, hup_runs, hup_unmasked, trap_runs;
static int wake_pipe[2];
static pid_t worker_tid;
static const int rt_values[] = { 1234, 5678, 91011 };

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	sigset_t cur;

	(void)sig;
	(void)uc;
	usr1_code = si->si_code;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	usr1_masked_ok = sigismember(&cur, SIGUSR1) && sigismember(&cur, SIGWINCH);
}

static void on_hup(int sig)
{
	sigset_t cur;

	(void)sig;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	hup_unmasked = !sigismember(&cur, SIGHUP);
	hup_runs++;
}

static void on_chld(int sig)
{
	(void)sig;
}

static void on_trap(int sig)
{
	(void)sig;
	trap_runs++;
}

static struct disposition dispositions[] = {
	{ SIGUSR1, (void *)on_usr1, SA_SIGINFO | SA_RESTART, SIGWINCH },
	{ SIGHUP, (void *)on_hup, SA_NODEFER | SA_RESETHAND, 0 },
	{ SIGCHLD, (void *)on_chld, SA_NOCLDSTOP | SA_RESTART, SIGALRM },
	{ SIGTRAP, (void *)on_trap, 0, 0 },
	{ SIGTERM, (void *)SIG_IGN, 0, 0 },
	{ SIGPIPE, (void *)SIG_IGN, 0, 0 },
};

#define NDISP (sizeof(dispositions) / sizeof(dispositions[0]))

static void install(const struct disposition *d)
{
	struct sigaction sa = { .sa_flags = d->flags };

	sa.sa_sigaction = (void (*)(int, siginfo_t *, void *))d->handler;
	sigemptyset(&sa.sa_mask);
	if (d->mask_sig)
		sigaddset(&sa.sa_mask, d->mask_sig);
	if (sigaction(d->sig, &sa, NULL))
		wl_die("sigaction");
}

/*
 * is_tkill accepts both codes seen for a tgkill(2) signal: SI_TKILL, which
 * sigaction(2) documents, and SI_USER, which Linux 6.18 reported here.
 */
static int is_tkill(int code)
{
	return code == SI_TKILL || code == SI_USER;
}

static void *worker(void *arg)
{
	sigset_t pending, quit;
	siginfo_t si;
	char c;

	(void)arg;
	worker_tid = gettid();
	while (read(wake_pipe[0], &c, 1) != 1)
		if (errno != EINTR)
			return NULL;
	sigpending(&pending);
	if (!sigismember(&pending, SIGQUIT) || !sigismember(&pending, SIGINT) ||
	    sigismember(&pending, SIGWINCH))
		wl_fail("worker: pending SIGQUIT %d SIGINT %d SIGWINCH %d, want 1 1 0",
			sigismember(&pending, SIGQUIT), sigismember(&pending, SIGINT),
			sigismember(&pending, SIGWINCH));
	sigemptyset(&quit);
	sigaddset(&quit, SIGQUIT);
	if (sigtimedwait(&quit, &si, &(struct timespec){ 0 }) != SIGQUIT || !is_tkill(si.si_code))
		wl_fail("worker: thread-directed SIGQUIT lost");
	return NULL;
}

static void block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGWINCH);
	sigaddset(&set, SIGRTMIN + 3);
	sigaddset(&set, SIGTRAP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		wl_die("sigprocmask");
}

static pthread_t build(void)
{
	union sigval v;
	pthread_t th;
	size_t i;

	for (i = 0; i < NDISP; i++)
		install(&dispositions[i]);
	block_signals();
	if (pipe(wake_pipe) || pthread_create(&th, NULL, worker, NULL))
		wl_die("start worker");
	while (!__atomic_load_n(&worker_tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	kill(getpid(), SIGINT);
	kill(getpid(), SIGINT);
	kill(getpid(), SIGTRAP);
	tgkill(getpid(), gettid(), SIGWINCH);
	pthread_kill(th, SIGQUIT);
	for (i = 0; i < 3; i++) {
		v.sival_int = rt_values[i];
		if (sigqueue(getpid(), SIGRTMIN + 3, v))
			wl_die("sigqueue");
	}
	return th;
}

static void check_dispositions(void)
{
	struct sigaction sa;
	size_t i;
	int sig;

	for (i = 0; i < NDISP; i++) {
		const struct disposition *d = &dispositions[i];

		sigaction(d->sig, NULL, &sa);
		if ((void *)sa.sa_sigaction != d->handler)
			wl_fail("signal %d: handler %p, want %p", d->sig, (void *)sa.sa_sigaction,
				d->handler);
		if ((sa.sa_flags & ~SA_RESTORER) != d->flags)
			wl_fail("signal %d: flags %#x, want %#x", d->sig,
				sa.sa_flags & ~SA_RESTORER, d->flags);
		for (sig = 1; sig < NSIG; sig++)
			if (sigismember(&sa.sa_mask, sig) != (sig == d->mask_sig))
				wl_fail("signal %d: sa_mask has signal %d = %d", d->sig, sig,
					sigismember(&sa.sa_mask, sig));
	}
}

static void want_wait(int sig, int code, int value)
{
	sigset_t set;
	siginfo_t si;

	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigtimedwait(&set, &si, &(struct timespec){ 0 }) != sig)
		wl_fail("signal %d: not pending: %s", sig, strerror(errno));
	else if ((code == SI_TKILL ? !is_tkill(si.si_code) : si.si_code != code) ||
		 si.si_pid != getpid() ||
		 (code == SI_QUEUE && si.si_value.sival_int != value))
		wl_fail("signal %d: code %d pid %d value %d, want %d %d %d", sig, si.si_code,
			si.si_pid, si.si_value.sival_int, code, getpid(), value);
}

static void want_none(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigtimedwait(&set, NULL, &(struct timespec){ 0 }) == sig)
		wl_fail("signal %d: pending one more time than sent", sig);
}

static void check_pending(pthread_t th)
{
	struct timespec deadline;
	sigset_t pending;
	char c = 'w';
	size_t i;

	sigpending(&pending);
	if (!sigismember(&pending, SIGINT) || !sigismember(&pending, SIGWINCH) ||
	    !sigismember(&pending, SIGRTMIN + 3) || sigismember(&pending, SIGQUIT))
		wl_fail("main: pending SIGINT %d SIGWINCH %d SIGRTMIN+3 %d SIGQUIT %d, want 1 1 1 0",
			sigismember(&pending, SIGINT), sigismember(&pending, SIGWINCH),
			sigismember(&pending, SIGRTMIN + 3), sigismember(&pending, SIGQUIT));
	if (write(wake_pipe[1], &c, 1) != 1)
		wl_fail("wake worker: %s", strerror(errno));
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WL_TIMEOUT_MS / 1000;
	if (pthread_timedjoin_np(th, NULL, &deadline))
		wl_fail("worker did not finish");
	want_wait(SIGWINCH, SI_TKILL, 0);
	want_wait(SIGINT, SI_USER, 0);
	want_none(SIGINT);
	for (i = 0; i < 3; i++)
		want_wait(SIGRTMIN + 3, SI_QUEUE, rt_values[i]);
	want_none(SIGRTMIN + 3);
	if (trap_runs)
		wl_fail("SIGTRAP handler ran %d times while SIGTRAP was blocked", (int)trap_runs);
	want_wait(SIGTRAP, SI_USER, 0);
}

/* check_delivery runs the handlers, which must still behave as their flags require. */
static void check_delivery(void)
{
	struct sigaction sa;

	kill(getpid(), SIGTERM);
	raise(SIGUSR1);
	if (!is_tkill(usr1_code) || !usr1_masked_ok)
		wl_fail("SIGUSR1 handler: si_code %d, mask applied %d", usr1_code, usr1_masked_ok);
	raise(SIGHUP);
	if (hup_runs != 1 || !hup_unmasked)
		wl_fail("SIGHUP handler: ran %d times, SA_NODEFER honoured %d", hup_runs,
			hup_unmasked);
	sigaction(SIGHUP, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		wl_fail("SIGHUP: SA_RESETHAND did not reset the handler");
}

int main(void)
{
	pthread_t th;

	wl_init();
	th = build();
	wl_ready();

	wl_wait_check();
	check_dispositions();
	check_pending(th);
	check_delivery();
	return wl_finish();
}
