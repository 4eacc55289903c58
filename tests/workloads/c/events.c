/*
 * events - eventfd, epoll, timerfd and signalfd, each with state inside.
 *
 * An eventfd with a count, an EFD_SEMAPHORE eventfd, an epoll fd whose
 * interest list contains ready and idle fds with their own data words, a
 * one-hour timerfd, a periodic timerfd that keeps expiring, an absolute
 * CLOCK_REALTIME timerfd, and a signalfd with a standard and two queued
 * real-time signals pending.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define NSEC 1000000000LL
#define ONESHOT_SEC 3600
#define PERIOD_NS 100000000LL
#define ABS_AHEAD_SEC 86400

static int counter, semaphore, epfd, ready_pipe[2], idle_pipe[2];
static int oneshot, periodic, absolute, sigfd;
static long long armed_ns, abs_deadline_ns;

static void build_eventfds(void)
{
	uint64_t five = 5;

	counter = eventfd(0, EFD_NONBLOCK);
	semaphore = eventfd(3, EFD_NONBLOCK | EFD_SEMAPHORE);
	if (counter < 0 || semaphore < 0 || write(counter, &five, 8) != 8)
		wl_die("eventfd");
}

static void watch(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
		wl_die("epoll_ctl");
}

static void build_epoll(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || pipe(ready_pipe) || pipe(idle_pipe))
		wl_die("epoll_create1");
	if (write(ready_pipe[1], "abc", 3) != 3)
		wl_die("write pipe");
	watch(counter, EPOLLIN, 0x1111);
	watch(ready_pipe[0], EPOLLIN | EPOLLET, 0x2222);
	watch(ready_pipe[1], EPOLLOUT, 0x3333);
	watch(idle_pipe[0], EPOLLIN, 0x4444);
}

static void build_timerfds(void)
{
	struct itimerspec one = { .it_value.tv_sec = ONESHOT_SEC };
	struct itimerspec per = { .it_value.tv_nsec = PERIOD_NS, .it_interval.tv_nsec = PERIOD_NS };
	struct itimerspec abs = { 0 };

	oneshot = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	absolute = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	if (oneshot < 0 || periodic < 0 || absolute < 0)
		wl_die("timerfd_create");
	abs_deadline_ns = wl_now_ns(CLOCK_REALTIME) + ABS_AHEAD_SEC * NSEC;
	abs.it_value.tv_sec = abs_deadline_ns / NSEC;
	abs.it_value.tv_nsec = abs_deadline_ns % NSEC;
	armed_ns = wl_now_ns(CLOCK_MONOTONIC);
	if (timerfd_settime(oneshot, 0, &one, NULL) || timerfd_settime(periodic, 0, &per, NULL) ||
	    timerfd_settime(absolute, TFD_TIMER_ABSTIME, &abs, NULL))
		wl_die("timerfd_settime");
}

static void build_signalfd(void)
{
	union sigval v;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 1);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		wl_die("sigprocmask");
	sigfd = signalfd(-1, &set, SFD_NONBLOCK);
	if (sigfd < 0)
		wl_die("signalfd");
	kill(getpid(), SIGUSR1);
	v.sival_int = 7;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	v.sival_int = 8;
	sigqueue(getpid(), SIGRTMIN + 1, v);
}

static void check_eventfds(void)
{
	uint64_t v = 0;
	int i;

	if (read(counter, &v, 8) != 8 || v != 5)
		wl_fail("eventfd: read = %llu, want 5", (unsigned long long)v);
	for (i = 0; i < 3; i++)
		if (read(semaphore, &v, 8) != 8 || v != 1)
			wl_fail("semaphore eventfd: read %d failed, want 1 of 3", i + 1);
	if (read(semaphore, &v, 8) != -1 || errno != EAGAIN)
		wl_fail("semaphore eventfd: a fourth read succeeded, want EAGAIN");
}

/* check_epoll runs before check_eventfds, while the counter is still readable. */
static void check_epoll(void)
{
	struct epoll_event ev[8];
	uint32_t want[5] = { 0, EPOLLIN, EPOLLIN, EPOLLOUT, 0 };
	uint32_t got[5] = { 0 };
	int i, n = epoll_wait(epfd, ev, 8, 0);

	for (i = 0; i < n; i++) {
		uint64_t d = ev[i].data.u64;

		if (d % 0x1111 || d / 0x1111 < 1 || d / 0x1111 > 4) {
			wl_fail("epoll: event with unknown data %#llx", (unsigned long long)d);
			continue;
		}
		got[d / 0x1111] = ev[i].events;
	}
	for (i = 1; i <= 4; i++)
		if (got[i] != want[i])
			wl_fail("epoll: data %#x events = %#x, want %#x", i * 0x1111, got[i],
				want[i]);
	/* The idle pipe must still be watched: data written now must wake epoll. */
	if (write(idle_pipe[1], "x", 1) != 1)
		wl_fail("write idle pipe: %s", strerror(errno));
	n = epoll_wait(epfd, ev, 8, WL_TIMEOUT_MS);
	for (i = 0; i < n; i++)
		if (ev[i].data.u64 == 0x4444 && ev[i].events == EPOLLIN)
			return;
	wl_fail("epoll: the idle pipe is no longer in the interest list");
}

static long long remaining_ns(int fd, long long *interval_ns)
{
	struct itimerspec cur;

	if (timerfd_gettime(fd, &cur)) {
		wl_fail("timerfd_gettime: %s", strerror(errno));
		return -1;
	}
	*interval_ns = cur.it_interval.tv_sec * NSEC + cur.it_interval.tv_nsec;
	return cur.it_value.tv_sec * NSEC + cur.it_value.tv_nsec;
}

static void check_timerfds(void)
{
	long long elapsed = wl_now_ns(CLOCK_MONOTONIC) - armed_ns, interval, left;
	uint64_t expirations = 0;

	left = remaining_ns(oneshot, &interval);
	/* Frozen time may or may not count, but the timer must not gain time or lose any. */
	if (left <= 0 || left > ONESHOT_SEC * NSEC || interval)
		wl_fail("one-shot timerfd: %lld ns left, interval %lld", left, interval);
	else if (left + elapsed < ONESHOT_SEC * NSEC - NSEC)
		wl_fail("one-shot timerfd: %lld ns left after %lld ns of %d s", left, elapsed,
			ONESHOT_SEC);
	left = remaining_ns(periodic, &interval);
	if (interval != PERIOD_NS || left <= 0 || left > PERIOD_NS)
		wl_fail("periodic timerfd: %lld ns left, interval %lld, want interval %lld", left,
			interval, PERIOD_NS);
	/* Right after READY or a restore it may not have expired yet, but it must soon. */
	if (!poll(&(struct pollfd){ .fd = periodic, .events = POLLIN }, 1,
		  (int)(2 * PERIOD_NS / 1000000)))
		wl_fail("periodic timerfd: no expiration in %lld ns", 2 * PERIOD_NS);
	elapsed = wl_now_ns(CLOCK_MONOTONIC) - armed_ns;
	if (read(periodic, &expirations, 8) != 8 || expirations < 1 ||
	    (long long)expirations > elapsed / PERIOD_NS + 1)
		wl_fail("periodic timerfd: %llu expirations in %lld ns",
			(unsigned long long)expirations, elapsed);
	left = remaining_ns(absolute, &interval);
	elapsed = abs_deadline_ns - wl_now_ns(CLOCK_REALTIME);
	if (left <= 0 || left > elapsed + NSEC || left < elapsed - NSEC)
		wl_fail("absolute timerfd: %lld ns left, want about %lld", left, elapsed);
}

static void want_siginfo(int sig, int value)
{
	struct signalfd_siginfo si;

	if (read(sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si)) {
		wl_fail("signalfd: signal %d missing: %s", sig, strerror(errno));
		return;
	}
	if ((int)si.ssi_signo != sig || (int)si.ssi_pid != getpid() ||
	    (value >= 0 && si.ssi_int != value))
		wl_fail("signalfd: got signal %u from %u value %d, want %d from %d value %d",
			si.ssi_signo, si.ssi_pid, si.ssi_int, sig, getpid(), value);
}

static void check_signalfd(void)
{
	struct signalfd_siginfo si;

	want_siginfo(SIGUSR1, -1);
	want_siginfo(SIGRTMIN + 1, 7);
	want_siginfo(SIGRTMIN + 1, 8);
	if (read(sigfd, &si, sizeof(si)) != -1 || errno != EAGAIN)
		wl_fail("signalfd: extra signal %u pending", si.ssi_signo);
}

int main(void)
{
	wl_init();
	build_eventfds();
	build_epoll();
	build_timerfds();
	build_signalfd();
	wl_ready();

	wl_wait_check();
	check_epoll();
	check_eventfds();
	check_timerfds();
	check_signalfd();
	return wl_finish();
}
