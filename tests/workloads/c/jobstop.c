/*
 * jobstop - a child stopped by SIGSTOP, like a shell job after Ctrl-Z.
 *
 * The child gets its own process group, as a shell's job does, and
 * blocks in read(2) on a pipe from the parent. The parent stops it and
 * collects the stop with waitpid(WUNTRACED), as a shell does. At the
 * check the child must still be stopped: input waits in the pipe, yet it
 * neither replies nor exits. Then SIGCONT must resume it:
 * waitpid(WCONTINUED) reports the continue, and the child's read(2)
 * restarts, takes the input and replies whether its parent is the same.
 * Once the parent closes the pipe, the child exits with status 42.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define CHILD_OK 42

static int to_child[2], from_child[2];
static pid_t parent_pid, child_pid;

static void child_main(void)
{
	char c = 0, answer;
	ssize_t n;

	wl_set_pdeathsig();
	close(to_child[1]);
	close(from_child[0]);
	do
		n = read(to_child[0], &c, 1);
	while (n < 0 && errno == EINTR);
	answer = n == 1 && c == 'g' && getppid() == parent_pid ? 'y' : 'n';
	if (write(from_child[1], &answer, 1) != 1)
		_exit(1);
	/* Wait for EOF, so that the parent can collect the continue before the exit. */
	do
		n = read(to_child[0], &c, 1);
	while (n < 0 && errno == EINTR);
	_exit(n == 0 ? CHILD_OK : 1);
}

static void build_stopped_child(void)
{
	int status;

	parent_pid = getpid();
	if (pipe(to_child) || pipe(from_child))
		wl_die("pipe");
	child_pid = fork();
	if (child_pid < 0)
		wl_die("fork");
	if (child_pid == 0)
		child_main();
	close(to_child[0]);
	close(from_child[1]);
	/* Both sides set the group, as shells do, so neither races the other. */
	if (setpgid(child_pid, child_pid) && errno != EACCES)
		wl_die("setpgid");
	if (kill(child_pid, SIGSTOP))
		wl_die("stop the child");
	if (waitpid(child_pid, &status, WUNTRACED) != child_pid || !WIFSTOPPED(status) ||
	    WSTOPSIG(status) != SIGSTOP)
		wl_die("wait for the child to stop");
}

/* child_state returns the state letter of the child in /proc/PID/stat, or '?'. */
static char child_state(void)
{
	char path[64], buf[512], *paren;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child_pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * check_still_stopped gives the child input and time, and checks that it
 * neither replied nor changed state. A restore may report the stop once more (ksu restores
 * the stop by sending SIGSTOP again), so one more stop report is
 * accepted; an exit or a continue is not.
 */
static void check_still_stopped(void)
{
	int status, stops = 0;
	pid_t r;
	char state = child_state(), answer;

	if (state != 'T')
		wl_fail("child state at the check = %c, want T (stopped)", state);
	if (write(to_child[1], "g", 1) != 1)
		wl_fail("write to the child: %s", strerror(errno));
	sleep_ms(200);
	for (int i = 0; i < 3; i++) {
		r = waitpid(child_pid, &status, WUNTRACED | WCONTINUED | WNOHANG);
		if (r == 0)
			break;
		if (r != child_pid) {
			wl_fail("waitpid(child, WNOHANG) = %d: %s", (int)r, strerror(errno));
			return;
		}
		if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGSTOP) {
			wl_fail("child changed while stopped: wait status %#x", status);
			return;
		}
		stops++;
	}
	if (stops > 1)
		wl_fail("child reported %d more stops, want at most 1", stops);
	if (wl_read_full(from_child[0], &answer, 1, 0) != 0)
		wl_fail("child replied %c while stopped", answer);
	state = child_state();
	if (state != 'T')
		wl_fail("child state with input waiting = %c, want T (stopped)", state);
}

/* wait_bounded waits for the child with options for at most WL_TIMEOUT_MS and returns 0 on timeout. */
static pid_t wait_bounded(int options, int *status)
{
	pid_t r = 0;

	for (int waited = 0; waited < WL_TIMEOUT_MS && r == 0; waited += 10) {
		r = waitpid(child_pid, status, options | WNOHANG);
		if (r == 0)
			sleep_ms(10);
	}
	return r;
}

/* check_resumes continues the child, expects its reply, then its exit. */
static void check_resumes(void)
{
	int status = 0;
	pid_t r;
	char answer = 0;

	if (kill(child_pid, SIGCONT)) {
		wl_fail("continue the child: %s", strerror(errno));
		return;
	}
	r = wait_bounded(WCONTINUED, &status);
	if (r != child_pid || !WIFCONTINUED(status))
		wl_fail("waitpid(child, WCONTINUED) = %d, status %#x, want the continue", (int)r, status);
	if (wl_read_full(from_child[0], &answer, 1, WL_TIMEOUT_MS) != 1)
		wl_fail("child did not reply within %d ms of SIGCONT", WL_TIMEOUT_MS);
	else if (answer != 'y')
		wl_fail("child replied %c, want y (read the input, same parent)", answer);
	close(to_child[1]);
	r = wait_bounded(0, &status);
	if (r != child_pid)
		wl_fail("child did not exit within %d ms of EOF: waitpid = %d", WL_TIMEOUT_MS, (int)r);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK)
		wl_fail("child wait status %#x, want exit %d", status, CHILD_OK);
}

int main(void)
{
	wl_init();
	build_stopped_child();
	wl_ready();

	wl_wait_check();
	check_still_stopped();
	check_resumes();
	return wl_finish();
}
