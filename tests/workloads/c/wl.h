/*
 * wl.h - the protocol every ksu workload follows.
 *
 * A workload builds its state, prints READY, waits for SIGUSR2 (the
 * check signal), checks its state and prints PASS or "FAIL: <what>".
 * It exits 0 on PASS and 1 on FAIL. Files go in the current directory,
 * which the harness makes a fresh scratch directory.
 */
#ifndef KSU_WL_H
#define KSU_WL_H

#include <stddef.h>
#include <sys/types.h>

/* Checks wait at most this long for data that should already be there. */
#define WL_TIMEOUT_MS 5000

/*
 * wl_init line-buffers stdout and blocks SIGUSR2. Call it first, before
 * any thread or child exists, so that they all inherit the block and
 * only wl_wait_check takes the signal.
 */
void wl_init(void);

/* wl_ready prints READY once the state is built. */
void wl_ready(void);

/* wl_wait_check blocks until SIGUSR2 arrives, for as long as it takes. */
void wl_wait_check(void);

/*
 * wl_fail records that the state differs from what was built. Safe to
 * call from any thread; the messages are printed by wl_finish.
 */
void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* wl_failed returns the number of wl_fail calls so far. */
int wl_failed(void);

/* wl_finish prints PASS or FAIL with every message and returns the exit code. */
int wl_finish(void);

/*
 * wl_die reports a setup failure: it prints "FAIL: setup: <what>: <errno>"
 * and exits 1. Use it only before READY.
 */
void wl_die(const char *what) __attribute__((noreturn));

/* wl_fill writes the pattern for seed into p; byte i depends on seed and off+i. */
void wl_fill(void *p, size_t n, unsigned seed, size_t off);

/* wl_mismatch returns the index of the first byte of p that breaks the pattern, or -1. */
ssize_t wl_mismatch(const void *p, size_t n, unsigned seed, size_t off);

/* wl_write_all writes n bytes to a blocking fd, retrying short writes. */
int wl_write_all(int fd, const void *p, size_t n);

/*
 * wl_read_full reads n bytes from fd, waiting up to timeout_ms for each
 * chunk with poll, and returns how many it got (less than n on timeout,
 * EOF or error).
 */
size_t wl_read_full(int fd, void *p, size_t n, int timeout_ms);

/* wl_now_ns returns the time of clock in nanoseconds. */
long long wl_now_ns(int clock);

/* wl_set_pdeathsig makes the caller get SIGKILL when its parent exits. */
void wl_set_pdeathsig(void);

#endif
