/*
 * pipeline - a shell pipeline of three processes with data in flight.
 *
 * /bin/sh runs `cat | tr a-z A-Z | { read -r _ <&4; sha256sum; }`. The
 * last stage waits for a line on fd 4 before it reads, so the first half
 * of the input sits in the pipes and in cat's and tr's buffers while the
 * workload waits. At check time the gate opens, the second half follows,
 * and the checksum must equal the one the same tools print for the whole
 * input, computed before READY.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define HALF (96 * 1024)
#define PIPELINE "cat | tr a-z A-Z | { read -r _ <&4; sha256sum; }"

static char data[2 * HALF];
static char want_sum[128];
static int in_pipe[2], gate_pipe[2], out_pipe[2];
static pid_t shell_pid;

static void make_data(void)
{
	size_t i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i * 7 + i / 64) % 26);
}

/* reference_sum runs the same tools on the whole input with nothing in between. */
static void reference_sum(void)
{
	FILE *f = fopen("input.txt", "w");

	if (!f || fwrite(data, 1, sizeof(data), f) != sizeof(data) || fclose(f))
		wl_die("write input.txt");
	if (system("tr a-z A-Z < input.txt | sha256sum > want.sum"))
		wl_die("run the reference pipeline");
	f = fopen("want.sum", "r");
	if (!f || !fgets(want_sum, sizeof(want_sum), f))
		wl_die("read want.sum");
	fclose(f);
}

/* high_pipe makes a pipe above fd 9, so the dup2 to fds 0, 1 and 4 cannot hit it. */
static void high_pipe(int fds[2])
{
	int low[2], i;

	if (pipe(low))
		wl_die("pipe");
	for (i = 0; i < 2; i++) {
		fds[i] = fcntl(low[i], F_DUPFD, 10);
		if (fds[i] < 0 || close(low[i]))
			wl_die("move pipe above fd 9");
	}
}

static void start_shell(void)
{
	high_pipe(in_pipe);
	high_pipe(gate_pipe);
	high_pipe(out_pipe);
	shell_pid = fork();
	if (shell_pid < 0)
		wl_die("fork");
	if (shell_pid)
		return;
	wl_set_pdeathsig();
	if (dup2(in_pipe[0], 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(gate_pipe[0], 4) < 0)
		_exit(3);
	close(in_pipe[0]);
	close(in_pipe[1]);
	close(out_pipe[0]);
	close(out_pipe[1]);
	close(gate_pipe[0]);
	close(gate_pipe[1]);
	execl("/bin/sh", "sh", "-c", PIPELINE, (char *)NULL);
	_exit(127);
}

/* feed writes n bytes of data from off, waiting up to timeout_ms for room each time. */
static size_t feed(size_t off, size_t n, int timeout_ms)
{
	struct pollfd p = { .fd = in_pipe[1], .events = POLLOUT };
	size_t done = 0;
	ssize_t r;

	fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	while (done < n && poll(&p, 1, timeout_ms) == 1) {
		r = write(in_pipe[1], data + off + done, n - done);
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (r > 0)
			done += (size_t)r;
	}
	return done;
}

static void wait_shell(void)
{
	int i, status = -1;

	/* The shell exits once sha256sum has printed; 5000 polls bound the wait. */
	for (i = 0; i < 5000; i++) {
		if (waitpid(shell_pid, &status, WNOHANG) == shell_pid)
			break;
		usleep(1000);
	}
	if (status != 0)
		wl_fail("sh -c '%s' exit status %#x", PIPELINE, status);
}

static void check(void)
{
	struct pollfd p = { .fd = out_pipe[0], .events = POLLIN };
	char got[128] = "";
	size_t n;

	if (waitpid(shell_pid, NULL, WNOHANG) != 0 || poll(&p, 1, 0) != 0)
		wl_fail("pipeline finished before the gate opened");
	if (write(gate_pipe[1], "go\n", 3) != 3)
		wl_fail("open the gate: %s", strerror(errno));
	n = feed(HALF, HALF, WL_TIMEOUT_MS);
	if (n != HALF)
		wl_fail("pipeline took %zu of the second %d bytes", n, HALF);
	close(in_pipe[1]);
	n = wl_read_full(out_pipe[0], got, sizeof(got) - 1, WL_TIMEOUT_MS);
	if (strcmp(got, want_sum))
		wl_fail("pipeline printed \"%.*s\", want \"%.*s\"", (int)strcspn(got, "\n"), got,
			(int)strcspn(want_sum, "\n"), want_sum);
	wait_shell();
}

int main(void)
{
	wl_init();
	make_data();
	reference_sum();
	start_shell();
	close(in_pipe[0]);
	close(out_pipe[1]);
	close(gate_pipe[0]);
	if (feed(0, HALF, WL_TIMEOUT_MS) != HALF) {
		errno = ETIMEDOUT;
		wl_die("feed the first half");
	}
	wl_ready();

	wl_wait_check();
	check();
	return wl_finish();
}
