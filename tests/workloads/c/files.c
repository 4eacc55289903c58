/*
 * files - open file descriptions and the fd table that points at them.
 *
 * A regular file at an offset, an O_APPEND file, a file deleted while
 * open, a directory fd, /dev/null, /dev/zero and /dev/urandom, two fds
 * from dup2 that share one offset, an fd shared with a child that moves
 * the offset at check time, and the FD_CLOEXEC, O_NONBLOCK and access
 * mode flags. Every fd must keep its number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

#define OFFSET_FD 10
#define APPEND_FD 11
#define DELETED_FD 12
#define DIR_FD 13
#define NULL_FD 14
#define ZERO_FD 15
#define URANDOM_FD 16
#define DUP_A_FD 17
#define DUP_B_FD 100
#define FORKED_FD 18
#define FLAGS_FD 1000

static int cmd_pipe[2], reply_pipe[2];
static pid_t child_pid;

/* open_at opens path and moves the description to fd number want, keeping O_CLOEXEC. */
static void open_at(int want, const char *path, int flags)
{
	int fd = open(path, flags, 0600);

	if (fd < 0)
		wl_die(path);
	if (fd != want && (dup3(fd, want, flags & O_CLOEXEC) != want || close(fd)))
		wl_die("dup2");
}

static void write_pattern_file(int fd, size_t len, unsigned seed)
{
	unsigned char buf[16384];

	wl_fill(buf, len, seed, 0);
	if (len > sizeof(buf) || wl_write_all(fd, buf, len))
		wl_die("write pattern file");
}

static void forked_child(void)
{
	unsigned char buf[24];
	char msg[120] = "", c;

	wl_set_pdeathsig();
	while (read(cmd_pipe[0], &c, 1) != 1)
		if (errno != EINTR)
			_exit(3);
	if (read(FORKED_FD, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		snprintf(msg, sizeof(msg), "child: read shared fd: %s", strerror(errno));
	else if (wl_mismatch(buf, sizeof(buf), 23, 1000) >= 0)
		snprintf(msg, sizeof(msg), "child: shared fd read the wrong bytes");
	wl_write_all(reply_pipe[1], msg, sizeof(msg));
	_exit(0);
}

static void build_regular(void)
{
	open_at(OFFSET_FD, "offset.dat", O_RDWR | O_CREAT | O_TRUNC);
	write_pattern_file(OFFSET_FD, 10000, 20);
	lseek(OFFSET_FD, 1234, SEEK_SET);
	open_at(APPEND_FD, "append.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND);
	if (wl_write_all(APPEND_FD, "first\n", 6))
		wl_die("write append.log");
	open_at(DELETED_FD, "gone.dat", O_RDWR | O_CREAT | O_TRUNC);
	write_pattern_file(DELETED_FD, 8192, 21);
	lseek(DELETED_FD, 100, SEEK_SET);
	if (unlink("gone.dat"))
		wl_die("unlink gone.dat");
	if (mkdir("dir", 0700))
		wl_die("mkdir dir");
	open_at(DIR_FD, "dir/inner", O_WRONLY | O_CREAT | O_TRUNC);
	if (wl_write_all(DIR_FD, "inner\n", 6) || close(DIR_FD))
		wl_die("write dir/inner");
	open_at(DIR_FD, "dir", O_RDONLY | O_DIRECTORY);
}

static void build_shared(void)
{
	open_at(NULL_FD, "/dev/null", O_RDWR);
	open_at(ZERO_FD, "/dev/zero", O_RDONLY);
	open_at(URANDOM_FD, "/dev/urandom", O_RDONLY);
	open_at(DUP_A_FD, "dup.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC);
	write_pattern_file(DUP_A_FD, 4096, 22);
	if (dup2(DUP_A_FD, DUP_B_FD) != DUP_B_FD)
		wl_die("dup2");
	lseek(DUP_A_FD, 500, SEEK_SET);
	open_at(FORKED_FD, "forked.dat", O_RDWR | O_CREAT | O_TRUNC);
	write_pattern_file(FORKED_FD, 4096, 23);
	lseek(FORKED_FD, 1000, SEEK_SET);
	open_at(FLAGS_FD, "dup.dat", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (pipe(cmd_pipe) || pipe(reply_pipe))
		wl_die("pipe");
	child_pid = fork();
	if (child_pid < 0)
		wl_die("fork");
	if (child_pid == 0)
		forked_child();
}

static void want_offset(int fd, off_t want, const char *what)
{
	off_t got = lseek(fd, 0, SEEK_CUR);

	if (got != want)
		wl_fail("%s: fd %d offset = %lld, want %lld", what, fd, (long long)got,
			(long long)want);
}

static void want_read(int fd, size_t n, unsigned seed, size_t off, const char *what)
{
	unsigned char buf[256];
	ssize_t r = read(fd, buf, n);

	if (r != (ssize_t)n)
		wl_fail("%s: read fd %d = %zd, want %zu", what, fd, r, n);
	else if (wl_mismatch(buf, n, seed, off) >= 0)
		wl_fail("%s: fd %d read the wrong bytes", what, fd);
}

static void want_link(int fd, const char *suffix)
{
	char path[64], target[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		wl_fail("fd %d: readlink: %s", fd, strerror(errno));
		return;
	}
	target[n] = 0;
	if (n < (ssize_t)strlen(suffix) || strcmp(target + n - strlen(suffix), suffix))
		wl_fail("fd %d points to %s, want ...%s", fd, target, suffix);
}

/*
 * check_append writes through a second fd first, so a restored fd that lost
 * O_APPEND would overwrite those bytes instead of adding after them.
 */
static void check_append(void)
{
	const char *want = "first\nXXsecond\n";
	char buf[32] = "";
	int fd;

	if (!(fcntl(APPEND_FD, F_GETFL) & O_APPEND))
		wl_fail("append.log: O_APPEND lost");
	fd = open("append.log", O_RDWR);
	if (fd < 0 || pwrite(fd, "XX", 2, 6) != 2 || write(APPEND_FD, "second\n", 7) != 7) {
		wl_fail("write append.log: %s", strerror(errno));
		return;
	}
	if (pread(fd, buf, sizeof(buf) - 1, 0) < 0 || strcmp(buf, want))
		wl_fail("append.log = \"%s\", want \"%s\"", buf, want);
	close(fd);
}

static void check_regular(void)
{
	struct stat st;

	want_link(OFFSET_FD, "/offset.dat");
	want_offset(OFFSET_FD, 1234, "regular file");
	want_read(OFFSET_FD, 100, 20, 1234, "regular file");
	want_link(APPEND_FD, "/append.log");
	check_append();
	want_link(DELETED_FD, "/gone.dat (deleted)");
	if (fstat(DELETED_FD, &st) || st.st_nlink != 0 || st.st_size != 8192)
		wl_fail("deleted file: nlink %ju size %jd, want 0 and 8192",
			(uintmax_t)st.st_nlink, (intmax_t)st.st_size);
	want_offset(DELETED_FD, 100, "deleted file");
	want_read(DELETED_FD, 200, 21, 100, "deleted file");
}

static void check_dir(void)
{
	char buf[16] = "";
	struct stat st;
	int fd;

	want_link(DIR_FD, "/dir");
	if (fstat(DIR_FD, &st) || !S_ISDIR(st.st_mode))
		wl_fail("directory fd %d is not a directory", DIR_FD);
	fd = openat(DIR_FD, "inner", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) != 6 || strcmp(buf, "inner\n"))
		wl_fail("openat(directory fd, \"inner\") did not read \"inner\\n\"");
	if (fd >= 0)
		close(fd);
}

static void want_device(int fd, unsigned minor_nr, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 ||
	    minor(st.st_rdev) != minor_nr)
		wl_fail("%s: fd %d is not character device 1:%u", what, fd, minor_nr);
}

static void check_devices(void)
{
	unsigned char buf[64];
	size_t i;

	want_device(NULL_FD, 3, "/dev/null");
	if (write(NULL_FD, "x", 1) != 1 || read(NULL_FD, buf, 1) != 0)
		wl_fail("/dev/null: write or read misbehaves");
	want_device(ZERO_FD, 5, "/dev/zero");
	memset(buf, 0xff, sizeof(buf));
	if (read(ZERO_FD, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		wl_fail("/dev/zero: short read");
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i]) {
			wl_fail("/dev/zero: byte %zu = %#x", i, buf[i]);
			break;
		}
	want_device(URANDOM_FD, 9, "/dev/urandom");
	if (read(URANDOM_FD, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		wl_fail("/dev/urandom: short read");
}

static void want_fd_flags(int fd, int fd_flags, int fl_flags)
{
	int mask = O_ACCMODE | O_APPEND | O_NONBLOCK;
	int got_fd = fcntl(fd, F_GETFD), got_fl = fcntl(fd, F_GETFL);

	if (got_fd != fd_flags)
		wl_fail("fd %d: F_GETFD = %#x, want %#x", fd, got_fd, fd_flags);
	if (got_fl < 0 || (got_fl & mask) != fl_flags)
		wl_fail("fd %d: F_GETFL = %#x, want %#x in %#x", fd, got_fl, fl_flags, mask);
}

/* check_shared_offsets moves one fd of each shared description and looks at the other. */
static void check_shared_offsets(void)
{
	char msg[120] = "", c = 'c';
	int status;

	want_offset(DUP_B_FD, 500, "dup2 copy");
	lseek(DUP_A_FD, 10, SEEK_CUR);
	want_offset(DUP_B_FD, 510, "dup2 copy after lseek on the original");
	want_fd_flags(DUP_A_FD, FD_CLOEXEC, O_RDWR);
	want_fd_flags(DUP_B_FD, 0, O_RDWR);
	want_fd_flags(FLAGS_FD, FD_CLOEXEC, O_RDONLY | O_NONBLOCK);
	want_fd_flags(APPEND_FD, 0, O_WRONLY | O_APPEND);
	want_offset(FORKED_FD, 1000, "fd shared with the child");
	if (write(cmd_pipe[1], &c, 1) != 1 ||
	    wl_read_full(reply_pipe[0], msg, sizeof(msg), WL_TIMEOUT_MS) != sizeof(msg)) {
		wl_fail("child %d did not reply", child_pid);
		return;
	}
	if (msg[0])
		wl_fail("%s", msg);
	want_offset(FORKED_FD, 1024, "fd shared with the child, after the child read 24 bytes");
	want_read(FORKED_FD, 16, 23, 1024, "fd shared with the child");
	if (waitpid(child_pid, &status, 0) != child_pid || status)
		wl_fail("child %d exit status %#x", child_pid, status);
}

int main(void)
{
	wl_init();
	build_regular();
	build_shared();
	wl_ready();

	wl_wait_check();
	check_regular();
	check_dir();
	check_devices();
	check_shared_offsets();
	return wl_finish();
}
