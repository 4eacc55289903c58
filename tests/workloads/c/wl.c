/*
 * wl.c - the READY / check / PASS protocol shared by the C workloads.
 */
#define _GNU_SOURCE
#include "wl.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[4096];
static int fail_count;

void wl_init(void)
{
	sigset_t set;

	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		wl_die("block SIGUSR2");
}

void wl_ready(void)
{
	printf("READY\n");
	fflush(stdout);
}

void wl_wait_check(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	/*
	 * N.B. sigwaitinfo may return EINTR when the process is stopped and
	 * resumed (a freeze, a checkpoint), so only SIGUSR2 ends the wait.
	 */
	while (sigwaitinfo(&set, NULL) != SIGUSR2)
		;
}

void wl_fail(const char *fmt, ...)
{
	size_t len;
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	len = strlen(fail_msg);
	if (len && len < sizeof(fail_msg) - 2) {
		strcpy(fail_msg + len, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(fail_msg + len, sizeof(fail_msg) - len, fmt, ap);
	va_end(ap);
	fail_count++;
	pthread_mutex_unlock(&fail_lock);
}

int wl_failed(void)
{
	int n;

	pthread_mutex_lock(&fail_lock);
	n = fail_count;
	pthread_mutex_unlock(&fail_lock);
	return n;
}

int wl_finish(void)
{
	pthread_mutex_lock(&fail_lock);
	if (fail_count) {
		printf("FAIL: %s\n", fail_msg);
		fflush(stdout);
		return 1;
	}
	printf("PASS\n");
	fflush(stdout);
	return 0;
}

void wl_die(const char *what)
{
	printf("FAIL: setup: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static unsigned char pattern_byte(unsigned seed, size_t i)
{
	unsigned long long x = (unsigned long long)seed * 0x9e3779b97f4a7c15ULL + i;

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return (unsigned char)x;
}

void wl_fill(void *p, size_t n, unsigned seed, size_t off)
{
	unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = pattern_byte(seed, off + i);
}

ssize_t wl_mismatch(const void *p, size_t n, unsigned seed, size_t off)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != pattern_byte(seed, off + i))
			return (ssize_t)i;
	return -1;
}

int wl_write_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	ssize_t r;

	while (n) {
		r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

size_t wl_read_full(int fd, void *p, size_t n, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char *b = p;
	size_t got = 0;
	ssize_t r;
	int pr;

	while (got < n) {
		pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			break;
		r = read(fd, b + got, n - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

long long wl_now_ns(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void wl_set_pdeathsig(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL))
		wl_die("prctl PR_SET_PDEATHSIG");
}
