/*
 * proctree - a process tree: children, a grandchild, an orphan, two
 * zombies, three sessions and five process groups.
 *
 * The main process is a child subreaper, so the orphan is reparented to
 * it rather than to init. Every live member checks its own pid, parent,
 * process group, session and parent-death signal when the main process
 * writes to its command pipe, and reports over one shared pipe. The main
 * process checks the groups and sessions from outside and reaps the
 * zombies, which must still carry their exit status and signal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

enum { MEMBER_A, MEMBER_G, MEMBER_S, MEMBER_S2, MEMBER_O, NMEMBERS };

static const char *member_name[NMEMBERS] = {
	"child", "grandchild", "session leader", "session member", "orphan",
};

/* report is one message on the shared pipe; it fits in PIPE_BUF, so writes are atomic. */
struct report {
	int member;
	int pid;
	char msg[120];
};

static int report_pipe[2];
static int cmd_pipe[NMEMBERS][2];
static pid_t main_pid;

static void send_report(int member, const char *msg)
{
	struct report r = { .member = member, .pid = getpid() };

	snprintf(r.msg, sizeof(r.msg), "%s", msg);
	if (wl_write_all(report_pipe[1], &r, sizeof(r)))
		_exit(3);
}

static void check_self(int member, pid_t pid, pid_t ppid, pid_t pgid, pid_t sid)
{
	char msg[120] = "";
	int sig = 0;

	prctl(PR_GET_PDEATHSIG, &sig);
	if (getpid() != pid)
		snprintf(msg, sizeof(msg), "getpid() = %d, want %d", getpid(), pid);
	else if (getppid() != ppid)
		snprintf(msg, sizeof(msg), "getppid() = %d, want %d", getppid(), ppid);
	else if (getpgid(0) != pgid)
		snprintf(msg, sizeof(msg), "getpgid(0) = %d, want %d", getpgid(0), pgid);
	else if (getsid(0) != sid)
		snprintf(msg, sizeof(msg), "getsid(0) = %d, want %d", getsid(0), sid);
	else if (sig != SIGKILL)
		snprintf(msg, sizeof(msg), "parent-death signal = %d, want SIGKILL", sig);
	send_report(member, msg);
}

/* serve reports the member ready, waits for the check command, checks and waits to be killed. */
static void serve(int member)
{
	pid_t pid = getpid(), ppid = getppid(), pgid = getpgid(0), sid = getsid(0);
	char c;

	send_report(member, "");
	while (read(cmd_pipe[member][0], &c, 1) != 1)
		if (errno != EINTR)
			_exit(3);
	check_self(member, pid, ppid, pgid, sid);
	for (;;)
		pause();
}

static pid_t fork_member(void (*body)(void))
{
	pid_t pid = fork();

	if (pid < 0)
		wl_die("fork");
	if (pid == 0) {
		body();
		_exit(0);
	}
	return pid;
}

static void grandchild(void)
{
	wl_set_pdeathsig();
	if (setpgid(0, 0))
		_exit(3);
	serve(MEMBER_G);
}

static void child(void)
{
	wl_set_pdeathsig();
	fork_member(grandchild);
	serve(MEMBER_A);
}

static void session_member(void)
{
	wl_set_pdeathsig();
	if (setpgid(0, 0))
		_exit(3);
	serve(MEMBER_S2);
}

static void session_leader(void)
{
	wl_set_pdeathsig();
	if (setsid() < 0)
		_exit(3);
	fork_member(session_member);
	serve(MEMBER_S);
}

/* orphan waits for its parent to exit and for the subreaper to adopt it. */
static void orphan(void)
{
	int i;

	for (i = 0; i < 5000 && getppid() != main_pid; i++)
		usleep(1000);
	if (getppid() != main_pid)
		_exit(3);
	wl_set_pdeathsig();
	serve(MEMBER_O);
}

static void orphan_parent(void)
{
	fork_member(orphan);
}

static pid_t make_zombie(int sig)
{
	pid_t pid = fork();

	if (pid < 0)
		wl_die("fork zombie");
	if (pid == 0) {
		if (sig)
			raise(sig);
		_exit(42);
	}
	return pid;
}

/* wait_exited waits, without reaping, until pid has exited. */
static void wait_exited(pid_t pid)
{
	siginfo_t si;
	int i;

	for (i = 0; i < 5000; i++) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT))
			wl_die("waitid zombie");
		if (si.si_pid == pid)
			return;
		usleep(1000);
	}
	errno = ETIMEDOUT;
	wl_die("wait for zombie");
}

static void make_pipes(void)
{
	int i;

	if (pipe(report_pipe))
		wl_die("pipe");
	for (i = 0; i < NMEMBERS; i++)
		if (pipe(cmd_pipe[i]))
			wl_die("pipe");
}

static void collect_reports(pid_t pids[NMEMBERS], const char *when)
{
	struct report r;
	int i;

	for (i = 0; i < NMEMBERS; i++) {
		if (wl_read_full(report_pipe[0], &r, sizeof(r), WL_TIMEOUT_MS) != sizeof(r)) {
			wl_fail("%s: %d of %d members reported", when, i, NMEMBERS);
			return;
		}
		if (r.member < 0 || r.member >= NMEMBERS) {
			wl_fail("%s: report from unknown member %d", when, r.member);
			continue;
		}
		if (r.msg[0])
			wl_fail("%s: %s %d: %s", when, member_name[r.member], r.pid, r.msg);
		if (pids[r.member] && pids[r.member] != r.pid)
			wl_fail("%s: %s has pid %d, want %d", when, member_name[r.member],
				r.pid, pids[r.member]);
		pids[r.member] = r.pid;
	}
}

static void check_groups(const pid_t pids[NMEMBERS])
{
	pid_t want_pgid[NMEMBERS] = {
		getpgid(0), pids[MEMBER_G], pids[MEMBER_S], pids[MEMBER_S2], getpgid(0),
	};
	pid_t want_sid[NMEMBERS] = {
		getsid(0), getsid(0), pids[MEMBER_S], pids[MEMBER_S], getsid(0),
	};
	int i;

	for (i = 0; i < NMEMBERS; i++) {
		if (kill(pids[i], 0))
			wl_fail("%s %d is gone: %s", member_name[i], pids[i], strerror(errno));
		if (getpgid(pids[i]) != want_pgid[i])
			wl_fail("getpgid(%s %d) = %d, want %d", member_name[i], pids[i],
				getpgid(pids[i]), want_pgid[i]);
		if (getsid(pids[i]) != want_sid[i])
			wl_fail("getsid(%s %d) = %d, want %d", member_name[i], pids[i],
				getsid(pids[i]), want_sid[i]);
	}
}

static void check_zombie(pid_t pid, int want_status)
{
	int status = 0;
	pid_t r = waitpid(pid, &status, WNOHANG);

	if (r != pid)
		wl_fail("waitpid(zombie %d) = %d (%s), want the zombie", pid, r,
			r < 0 ? strerror(errno) : "still running");
	else if (status != want_status)
		wl_fail("zombie %d status = %#x, want %#x", pid, status, want_status);
}

static void kill_all(const pid_t pids[NMEMBERS])
{
	int i;

	for (i = 0; i < NMEMBERS; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	/* Members exit at once on SIGKILL; 5000 polls bound the reaping. */
	for (i = 0; i < 5000; i++) {
		pid_t r = waitpid(-1, NULL, WNOHANG);

		if (r < 0)
			return;
		if (r == 0)
			usleep(1000);
	}
}

int main(void)
{
	pid_t pids[NMEMBERS] = { 0 };
	pid_t self, zombie_exit, zombie_signal, parent;
	int i, subreaper = 0;
	char c = 'c';

	wl_init();
	main_pid = self = getpid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		wl_die("prctl PR_SET_CHILD_SUBREAPER");
	make_pipes();
	fork_member(child);
	fork_member(session_leader);
	parent = fork_member(orphan_parent);
	if (waitpid(parent, NULL, 0) != parent)
		wl_die("wait for the orphan's parent");
	zombie_exit = make_zombie(0);
	zombie_signal = make_zombie(SIGTERM);
	wait_exited(zombie_exit);
	wait_exited(zombie_signal);
	collect_reports(pids, "setup");
	if (wl_failed())
		return wl_finish();
	wl_ready();

	wl_wait_check();
	if (getpid() != self)
		wl_fail("getpid() = %d, want %d", getpid(), self);
	prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
	if (subreaper != 1)
		wl_fail("child subreaper = %d, want 1", subreaper);
	check_groups(pids);
	for (i = 0; i < NMEMBERS; i++)
		if (write(cmd_pipe[i][1], &c, 1) != 1)
			wl_fail("write command to %s: %s", member_name[i], strerror(errno));
	collect_reports(pids, "check");
	check_zombie(zombie_exit, 42 << 8);
	check_zombie(zombie_signal, SIGTERM);
	kill_all(pids);
	return wl_finish();
}
