/*
 * tmpfs - files on a tmpfs and below /tmp that the process reaches by path.
 *
 * Usage: tmpfs [RUNDIR [SHMDIR [TMPDIR]]], by default /run/ksutest,
 * /dev/shm and /tmp. The workload makes RUNDIR/PID its working
 * directory, keeps an fd open to RUNDIR/PID/data with known content, maps
 * SHMDIR/ksutest-shm-PID shared (as shm_open would), listens on a Unix
 * socket bound at RUNDIR/PID/sock and keeps an fd open to
 * TMPDIR/ksutest-tmp-PID.
 * A new kernel starts with empty tmpfs mounts and a boot that empties
 * /tmp, so the check reopens every path by name: each must lead to the
 * file its fd or mapping uses, with the same content, and a client must
 * reach the listener through the socket path. Every path is removed
 * before the workload exits, and RUNDIR too once it is empty.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "wl.h"

#define DATA_LEN (3 * 4096 + 100)
#define SHM_LEN (4 * 4096)
#define TMP_LEN 5000

static const char *run_base;
static char run_dir[PATH_MAX], data_path[PATH_MAX + 8], sock_path[PATH_MAX + 8];
static char shm_path[PATH_MAX], tmp_path[PATH_MAX];
static int data_fd, tmp_fd, listen_fd;
static unsigned char *shm;

static void make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) && errno != EEXIST)
		wl_die(path);
}

/* make_file creates path with len bytes of the pattern for seed and returns a read-write fd. */
static int make_file(const char *path, size_t len, unsigned seed)
{
	static unsigned char buf[SHM_LEN];
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

	if (fd < 0)
		wl_die(path);
	wl_fill(buf, len, seed, 0);
	if (len > sizeof(buf) || wl_write_all(fd, buf, len))
		wl_die(path);
	return fd;
}

static void setup(int argc, char **argv)
{
	const char *run = argc > 1 ? argv[1] : "/run/ksutest";
	const char *shmdir = argc > 2 ? argv[2] : "/dev/shm";
	const char *tmp = argc > 3 ? argv[3] : "/tmp";
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int shm_fd;

	run_base = run;
	make_dir(run, 0755);
	if (snprintf(run_dir, sizeof(run_dir), "%s/%d", run, (int)getpid()) >= (int)sizeof(run_dir) ||
	    snprintf(data_path, sizeof(data_path), "%s/data", run_dir) >= (int)sizeof(data_path) ||
	    snprintf(sock_path, sizeof(sock_path), "%s/sock", run_dir) >= (int)sizeof(addr.sun_path) ||
	    snprintf(shm_path, sizeof(shm_path), "%s/ksutest-shm-%d", shmdir, (int)getpid()) >= (int)sizeof(shm_path) ||
	    snprintf(tmp_path, sizeof(tmp_path), "%s/ksutest-tmp-%d", tmp, (int)getpid()) >= (int)sizeof(tmp_path)) {
		errno = ENAMETOOLONG;
		wl_die("paths");
	}
	make_dir(run_dir, 0750);
	if (chdir(run_dir))
		wl_die("chdir");
	data_fd = make_file(data_path, DATA_LEN, 31);
	tmp_fd = make_file(tmp_path, TMP_LEN, 37);

	shm_fd = make_file(shm_path, SHM_LEN, 41);
	shm = mmap(NULL, SHM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
	if (shm == MAP_FAILED)
		wl_die("mmap shm");
	close(shm_fd);
	/* Dirty a page through the mapping only: the file must carry it. */
	wl_fill(shm + 4096, 4096, 43, 0);

	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		wl_die("socket");
	/* Bound by its name relative to the working directory. */
	strcpy(addr.sun_path, "sock");
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(listen_fd, 4))
		wl_die("bind sock");
}

/* check_same reports whether path names the same inode as fd. */
static void check_same(const char *what, const char *path, int fd)
{
	struct stat a, b;

	if (stat(path, &a)) {
		wl_fail("%s: stat %s: %s", what, path, strerror(errno));
		return;
	}
	if (fstat(fd, &b)) {
		wl_fail("%s: fstat: %s", what, strerror(errno));
		return;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		wl_fail("%s: %s is inode %ju, the fd has %ju", what, path,
			(uintmax_t)a.st_ino, (uintmax_t)b.st_ino);
}

/* check_content reads len bytes of path and compares them with the pattern for seed. */
static void check_content(const char *what, const char *path, size_t len, unsigned seed, size_t off)
{
	static unsigned char buf[SHM_LEN];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		wl_fail("%s: open %s: %s", what, path, strerror(errno));
		return;
	}
	n = pread(fd, buf, len, off);
	if (n != (ssize_t)len)
		wl_fail("%s: read %s = %zd bytes, want %zu", what, path, n, len);
	else if (wl_mismatch(buf, len, seed, 0) >= 0)
		wl_fail("%s: %s has the wrong bytes at offset %zu", what, path, off);
	close(fd);
}

static void check_files(void)
{
	struct stat st;

	check_same("data", data_path, data_fd);
	check_content("data", data_path, DATA_LEN, 31, 0);
	if (fstat(data_fd, &st) == 0 && st.st_size != DATA_LEN)
		wl_fail("data: size %jd, want %d", (intmax_t)st.st_size, DATA_LEN);
	if (fstat(data_fd, &st) == 0 && (st.st_mode & 07777) != 0640)
		wl_fail("data: mode %o, want 640", st.st_mode & 07777);
	if (stat(run_dir, &st) == 0 && (st.st_mode & 07777) != 0750)
		wl_fail("%s: mode %o, want 750", run_dir, st.st_mode & 07777);
	check_same("tmp", tmp_path, tmp_fd);
	check_content("tmp", tmp_path, TMP_LEN, 37, 0);
}

static void check_cwd(void)
{
	struct stat a, b;

	if (stat(".", &a) || stat(run_dir, &b))
		wl_fail("cwd: stat: %s", strerror(errno));
	else if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		wl_fail("cwd: . is not %s", run_dir);
}

static void check_shm(void)
{
	int fd;

	if (wl_mismatch(shm, 4096, 41, 0) >= 0 || wl_mismatch(shm + 4096, 4096, 43, 0) >= 0)
		wl_fail("shm: the mapping lost its bytes");
	check_content("shm", shm_path, 4096, 41, 0);
	check_content("shm dirty page", shm_path, 4096, 43, 4096);
	/* A write through the mapping must show in the file: it is shared. */
	shm[2 * 4096] ^= 0xff;
	fd = open(shm_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		wl_fail("shm: open %s: %s", shm_path, strerror(errno));
		return;
	}
	unsigned char c;
	if (pread(fd, &c, 1, 2 * 4096) != 1 || c != shm[2 * 4096])
		wl_fail("shm: a write through the mapping does not reach %s", shm_path);
	close(fd);
}

static void check_socket(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), s;
	char b = 0;

	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1); /* setup checked the length */
	if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr))) {
		wl_fail("sock: connect %s: %s", sock_path, strerror(errno));
		goto out;
	}
	if (poll(&p, 1, WL_TIMEOUT_MS) != 1) {
		wl_fail("sock: the listener got no connection from %s", sock_path);
		goto out;
	}
	s = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0 || write(c, "k", 1) != 1 || wl_read_full(s, &b, 1, WL_TIMEOUT_MS) != 1 || b != 'k')
		wl_fail("sock: no byte through the connection from %s", sock_path);
	if (s >= 0)
		close(s);
out:
	if (c >= 0)
		close(c);
}

static void cleanup(void)
{
	unlink(sock_path);
	unlink(data_path);
	unlink(shm_path);
	unlink(tmp_path);
	if (chdir("/") == 0) {
		rmdir(run_dir);
		rmdir(run_base); /* fails while another instance uses it */
	}
}

int main(int argc, char **argv)
{
	int code;

	wl_init();
	setup(argc, argv);
	wl_ready();
	wl_wait_check();
	check_files();
	check_cwd();
	check_shm();
	check_socket();
	code = wl_finish();
	cleanup();
	return code;
}
