/*
 * creds - a process that is not root: uids, gids, supplementary groups,
 * capability sets including ambient and bounding, and securebits. It
 * prints READY, waits for SIGUSR2, checks its credentials and prints
 * PASS or FAIL.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CAPS ((1u << CAP_NET_BIND_SERVICE) | (1u << CAP_KILL))

static int failed;

static void want(long got, long expected, const char *what)
{
	if (got != expected) {
		printf("FAIL: %s = %ld, want %ld\n", what, got, expected);
		failed = 1;
	}
}

static void set_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = { { CAPS, CAPS, CAPS } };

	if (syscall(SYS_capset, &hdr, data) || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		perror("FAIL: setup: capset");
}

static void check(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uid_t r, e, s;
	gid_t gr, ge, gs, groups[4];

	getresuid(&r, &e, &s);
	want(r, 2001, "ruid");
	want(e, 2002, "euid");
	want(s, 2003, "suid");
	getresgid(&gr, &ge, &gs);
	want(gr, 1001, "rgid");
	want(ge, 1002, "egid");
	want(gs, 1003, "sgid");
	want(getgroups(4, groups), 2, "number of groups");
	want(groups[0] + groups[1], 33, "sum of groups 11 and 22");
	syscall(SYS_capget, &hdr, data);
	want(data[0].effective, CAPS, "effective capabilities");
	want(data[0].permitted, CAPS, "permitted capabilities");
	want(data[0].inheritable, CAPS, "inheritable capabilities");
	want(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0), 1, "ambient CAP_NET_BIND_SERVICE");
	want(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT), 0, "CAP_SYS_BOOT in the bounding set");
	want(prctl(PR_CAPBSET_READ, CAP_KILL), 1, "CAP_KILL in the bounding set");
	want(prctl(PR_GET_SECUREBITS), SECBIT_KEEP_CAPS, "securebits");
}

int main(void)
{
	gid_t groups[] = { 11, 22 };
	sigset_t set;

	setvbuf(stdout, NULL, _IOLBF, 0);
	closefrom(3); /* drop descriptors leaked by whatever started the test */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (setgroups(2, groups) || prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) ||
	    prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS) || setresgid(1001, 1002, 1003) ||
	    setresuid(2001, 2002, 2003)) {
		perror("FAIL: setup");
		return 1;
	}
	set_caps();
	printf("READY\n");
	while (sigwaitinfo(&set, NULL) != SIGUSR2)
		;
	check();
	if (!failed)
		printf("PASS\n");
	return failed;
}
