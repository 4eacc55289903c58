/*
 * identity - the attributes that make up a process's identity.
 *
 * The cwd, umask, resource limits, nice value, scheduling policy (of the
 * process and of one thread), oom_score_adj, no_new_privs, timer slack,
 * the dumpable flag, the comm of the process and of a thread, the
 * personality (UNAME26 must still change uname's output), and the
 * credentials, with supplementary groups when run as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "wl.h"

#define UMASK 027
#define NOFILE_SOFT 777
#define MSGQUEUE_SOFT 300000
#define MSGQUEUE_HARD 400000
#define OOM_SCORE_ADJ 345
#define TIMER_SLACK_NS 123456
#define PERSONA (PER_LINUX | ADDR_NO_RANDOMIZE | UNAME26)

static char cwd[4096];
static struct rlimit nofile, msgqueue;
static int nice_value, ngroups, wake_pipe[2];
static gid_t groups[8];
static uid_t uid, euid;
static gid_t gid, egid;
static pid_t thread_tid;
static pthread_t thread;

/* idle_thread runs under SCHED_IDLE with its own name until the check. */
static void *idle_thread(void *arg)
{
	struct sched_param sp = { 0 };
	char c;

	(void)arg;
	if (sched_setscheduler(0, SCHED_IDLE, &sp) || prctl(PR_SET_NAME, "ksu-idthread"))
		wl_die("set the thread's policy and name");
	__atomic_store_n(&thread_tid, gettid(), __ATOMIC_RELEASE);
	while (read(wake_pipe[0], &c, 1) != 1 && errno == EINTR)
		;
	return NULL;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || wl_write_all(fd, text, strlen(text)) || close(fd))
		wl_die(path);
}

static void build_limits(void)
{
	struct sched_param sp = { 0 };
	char text[16];

	umask(UMASK);
	getrlimit(RLIMIT_NOFILE, &nofile);
	nofile.rlim_cur = NOFILE_SOFT;
	msgqueue.rlim_cur = MSGQUEUE_SOFT;
	msgqueue.rlim_max = MSGQUEUE_HARD;
	if (setrlimit(RLIMIT_NOFILE, &nofile) || setrlimit(RLIMIT_MSGQUEUE, &msgqueue))
		wl_die("setrlimit");
	nice_value = getpriority(PRIO_PROCESS, 0) + 5;
	if (nice_value > 19)
		nice_value = 19;
	if (setpriority(PRIO_PROCESS, 0, nice_value) ||
	    sched_setscheduler(0, SCHED_BATCH, &sp))
		wl_die("set nice and SCHED_BATCH");
	snprintf(text, sizeof(text), "%d", OOM_SCORE_ADJ);
	write_file("/proc/self/oom_score_adj", text);
}

static void build_identity(void)
{
	uid = getuid();
	euid = geteuid();
	gid = getgid();
	egid = getegid();
	if (euid == 0) {
		gid_t want[] = { 4242, 4343, 4444 };

		if (setgroups(3, want))
			wl_die("setgroups");
	}
	ngroups = getgroups(8, groups);
	if (mkdir("sub dir", 0700) || chdir("sub dir") || !getcwd(cwd, sizeof(cwd)))
		wl_die("chdir");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS) ||
	    prctl(PR_SET_NAME, "ksu-identity") || personality(PERSONA) < 0)
		wl_die("prctl");
	if (pipe(wake_pipe) || pthread_create(&thread, NULL, idle_thread, NULL))
		wl_die("pthread_create");
	while (!__atomic_load_n(&thread_tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* Last, because it makes /proc/self owned by root. */
	if (prctl(PR_SET_DUMPABLE, 0))
		wl_die("PR_SET_DUMPABLE");
}

static void want_int(long got, long want, const char *what)
{
	if (got != want)
		wl_fail("%s = %ld, want %ld", what, got, want);
}

static void want_limit(int resource, const struct rlimit *want, const char *what)
{
	struct rlimit got;

	getrlimit(resource, &got);
	if (got.rlim_cur != want->rlim_cur || got.rlim_max != want->rlim_max)
		wl_fail("%s = %llu/%llu, want %llu/%llu", what, (unsigned long long)got.rlim_cur,
			(unsigned long long)got.rlim_max, (unsigned long long)want->rlim_cur,
			(unsigned long long)want->rlim_max);
}

static void want_file(const char *path, const char *want)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (n < 0 || strcmp(buf, want))
		wl_fail("%s = \"%s\", want \"%s\"", path, buf, want);
	if (fd >= 0)
		close(fd);
}

static void check_limits(void)
{
	char buf[4096], path[64];
	mode_t mask = umask(UMASK);

	want_int(mask, UMASK, "umask");
	if (!getcwd(buf, sizeof(buf)) || strcmp(buf, cwd))
		wl_fail("cwd = %s, want %s", buf, cwd);
	want_limit(RLIMIT_NOFILE, &nofile, "RLIMIT_NOFILE");
	want_limit(RLIMIT_MSGQUEUE, &msgqueue, "RLIMIT_MSGQUEUE");
	want_int(getpriority(PRIO_PROCESS, 0), nice_value, "nice");
	want_int(sched_getscheduler(0), SCHED_BATCH, "scheduling policy");
	want_int(sched_getscheduler(thread_tid), SCHED_IDLE, "thread's scheduling policy");
	want_file("/proc/self/oom_score_adj", "345\n");
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", thread_tid);
	want_file(path, "ksu-idthread\n");
}

static void check_identity(void)
{
	gid_t now[8];
	struct utsname u;
	char name[16] = "";

	want_int(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1, "no_new_privs");
	want_int(prctl(PR_GET_DUMPABLE), 0, "dumpable");
	want_int(prctl(PR_GET_TIMERSLACK), TIMER_SLACK_NS, "timer slack");
	prctl(PR_GET_NAME, name);
	if (strcmp(name, "ksu-identity"))
		wl_fail("comm = %s, want ksu-identity", name);
	want_int(personality(0xffffffff), PERSONA, "personality");
	if (uname(&u) || strncmp(u.release, "2.6.", 4))
		wl_fail("uname release %s under UNAME26, want 2.6.*", u.release);
	want_int(getuid(), uid, "uid");
	want_int(geteuid(), euid, "euid");
	want_int(getgid(), gid, "gid");
	want_int(getegid(), egid, "egid");
	if (getgroups(8, now) != ngroups || memcmp(now, groups, sizeof(gid_t) * (size_t)ngroups))
		wl_fail("supplementary groups changed");
}

int main(void)
{
	wl_init();
	build_limits();
	build_identity();
	wl_ready();

	wl_wait_check();
	check_limits();
	check_identity();
	if (write(wake_pipe[1], "w", 1) != 1 || pthread_join(thread, NULL))
		wl_fail("stop the thread: %s", strerror(errno));
	return wl_finish();
}
