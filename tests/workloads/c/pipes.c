/*
 * pipes - pipes and a FIFO with unread data.
 *
 * A pipe with 3000 unread bytes, a pipe grown with F_SETPIPE_SZ and
 * filled to the brim, a pipe a child wrote into, a pipe whose write end
 * is closed (EOF after the data), an O_DIRECT packet pipe whose message
 * boundaries must stay, a pipe with stream data around two packets whose
 * write end alone is in packet mode, a FIFO in the file system that a
 * new opener must still reach, and a FIFO with two packets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wl.h"

#define PLAIN_LEN 3000
#define BIG_PIPE_SIZE (128 * 1024)
#define CHILD_LEN 5000
#define FIFO_LEN 2000

#define MIXED_STREAM_LEN 4096 /* a full page, so the packet after it gets its own buffer */
#define MIXED_PACKET_LEN 60
#define MIXED_TAIL_LEN 30

#define FIFO_PACKET_LEN 50

static int plain[2], full[2], from_child[2], closed[2], packet[2], mixed[2], fifo_rd, fifo_wr;
static int pfifo_rd, pfifo_wr;
static size_t full_len;
static pid_t child_pid;

static void fill_until_full(int fd)
{
	unsigned char buf[4096];
	ssize_t r;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* The pipe is full after BIG_PIPE_SIZE bytes, so this many writes are enough. */
	for (int i = 0; i <= BIG_PIPE_SIZE / (int)sizeof(buf); i++) {
		wl_fill(buf, sizeof(buf), 31, full_len);
		r = write(fd, buf, sizeof(buf));
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0)
			wl_die("write full pipe");
		full_len += (size_t)r;
	}
	errno = EFBIG;
	wl_die("fill pipe");
}

static void write_pattern(int fd, size_t n, unsigned seed)
{
	unsigned char buf[8192];

	wl_fill(buf, n, seed, 0);
	if (n > sizeof(buf) || wl_write_all(fd, buf, n))
		wl_die("write pipe");
}

static void build_pipes(void)
{
	unsigned char buf[200];

	if (pipe(plain) || pipe(full) || pipe(from_child) || pipe(closed) ||
	    pipe2(packet, O_DIRECT))
		wl_die("pipe");
	write_pattern(plain[1], PLAIN_LEN, 30);
	if (fcntl(full[1], F_SETPIPE_SZ, BIG_PIPE_SIZE) < BIG_PIPE_SIZE)
		wl_die("F_SETPIPE_SZ");
	fill_until_full(full[1]);
	write_pattern(closed[1], 10, 33);
	close(closed[1]);
	wl_fill(buf, sizeof(buf), 34, 0);
	if (write(packet[1], buf, 100) != 100 || write(packet[1], buf + 100, 100) != 100)
		wl_die("write packet pipe");
	child_pid = fork();
	if (child_pid < 0)
		wl_die("fork");
	if (child_pid == 0) {
		write_pattern(from_child[1], CHILD_LEN, 32);
		_exit(0);
	}
	if (waitpid(child_pid, NULL, 0) != child_pid)
		wl_die("wait for the writer child");
}

static void set_direct(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT))
		wl_die("set O_DIRECT");
}

/*
 * build_mixed queues a page of stream data, two packets and stream data
 * again, and leaves the write end in packet mode and the read end not.
 */
static void build_mixed(void)
{
	if (pipe(mixed))
		wl_die("pipe");
	write_pattern(mixed[1], MIXED_STREAM_LEN, 36);
	set_direct(mixed[1], 1);
	write_pattern(mixed[1], MIXED_PACKET_LEN, 37);
	write_pattern(mixed[1], MIXED_PACKET_LEN, 38);
	set_direct(mixed[1], 0);
	write_pattern(mixed[1], MIXED_TAIL_LEN, 39);
	set_direct(mixed[1], 1);
}

static void build_fifo(void)
{
	if (mkfifo("fifo", 0600))
		wl_die("mkfifo");
	fifo_rd = open("fifo", O_RDONLY | O_NONBLOCK);
	fifo_wr = open("fifo", O_WRONLY);
	if (fifo_rd < 0 || fifo_wr < 0)
		wl_die("open fifo");
	write_pattern(fifo_wr, FIFO_LEN, 35);
	if (mkfifo("pfifo", 0600))
		wl_die("mkfifo");
	pfifo_rd = open("pfifo", O_RDONLY | O_NONBLOCK);
	pfifo_wr = open("pfifo", O_WRONLY);
	if (pfifo_rd < 0 || pfifo_wr < 0)
		wl_die("open packet fifo");
	set_direct(pfifo_wr, 1);
	write_pattern(pfifo_wr, FIFO_PACKET_LEN, 42);
	write_pattern(pfifo_wr, FIFO_PACKET_LEN, 43);
}

/* want_drain reads fd until it would block and checks it got exactly n pattern bytes. */
static void want_drain(int fd, size_t n, unsigned seed, const char *what)
{
	static unsigned char buf[BIG_PIPE_SIZE + 1];
	int avail = -1;
	size_t got;

	if (ioctl(fd, FIONREAD, &avail) || avail != (int)n)
		wl_fail("%s: FIONREAD = %d, want %zu", what, avail, n);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	got = wl_read_full(fd, buf, sizeof(buf), 0);
	if (got != n)
		wl_fail("%s: read %zu bytes, want %zu", what, got, n);
	else if (wl_mismatch(buf, n, seed, 0) >= 0)
		wl_fail("%s: data changed at byte %zd", what, wl_mismatch(buf, n, seed, 0));
}

static void check_packets(void)
{
	unsigned char buf[1000];
	ssize_t a = read(packet[0], buf, sizeof(buf));
	ssize_t b = read(packet[0], buf + 100, sizeof(buf) - 100);

	if (a != 100 || b != 100)
		wl_fail("packet pipe: reads returned %zd and %zd bytes, want 100 and 100", a, b);
	else if (wl_mismatch(buf, 200, 34, 0) >= 0)
		wl_fail("packet pipe: data changed");
}

/*
 * check_mixed reads the mixed pipe: the first read stops after the first
 * packet, the second returns the second packet, the third the stream
 * tail. A new write through the write end, still in packet mode, is one
 * packet again.
 */
static void check_mixed(void)
{
	static unsigned char buf[2 * MIXED_STREAM_LEN];
	ssize_t a, b, c, d;

	if (!(fcntl(mixed[1], F_GETFL) & O_DIRECT) || (fcntl(mixed[0], F_GETFL) & O_DIRECT))
		wl_fail("mixed pipe: O_DIRECT must be set on the write end only");
	fcntl(mixed[0], F_SETFL, fcntl(mixed[0], F_GETFL) | O_NONBLOCK);
	a = read(mixed[0], buf, sizeof(buf));
	if (a != MIXED_STREAM_LEN + MIXED_PACKET_LEN || wl_mismatch(buf, MIXED_STREAM_LEN, 36, 0) >= 0 ||
	    wl_mismatch(buf + MIXED_STREAM_LEN, MIXED_PACKET_LEN, 37, 0) >= 0)
		wl_fail("mixed pipe: first read = %zd bytes, want %d ending with the first packet", a,
			MIXED_STREAM_LEN + MIXED_PACKET_LEN);
	b = read(mixed[0], buf, sizeof(buf));
	if (b != MIXED_PACKET_LEN || wl_mismatch(buf, MIXED_PACKET_LEN, 38, 0) >= 0)
		wl_fail("mixed pipe: second read = %zd bytes, want the %d of the second packet", b, MIXED_PACKET_LEN);
	c = read(mixed[0], buf, sizeof(buf));
	if (c != MIXED_TAIL_LEN || wl_mismatch(buf, MIXED_TAIL_LEN, 39, 0) >= 0)
		wl_fail("mixed pipe: third read = %zd bytes, want the %d stream bytes", c, MIXED_TAIL_LEN);
	write_pattern(mixed[1], 10, 40);
	write_pattern(mixed[1], 10, 41);
	d = read(mixed[0], buf, sizeof(buf));
	if (d != 10)
		wl_fail("mixed pipe: read after two new packet writes = %zd bytes, want 10", d);
}

static void check_packet_fifo(void)
{
	unsigned char buf[1000];
	ssize_t a = read(pfifo_rd, buf, sizeof(buf));
	ssize_t b = read(pfifo_rd, buf + FIFO_PACKET_LEN, sizeof(buf) - FIFO_PACKET_LEN);

	if (a != FIFO_PACKET_LEN || b != FIFO_PACKET_LEN)
		wl_fail("packet fifo: reads returned %zd and %zd bytes, want %d and %d", a, b,
			FIFO_PACKET_LEN, FIFO_PACKET_LEN);
	else if (wl_mismatch(buf, FIFO_PACKET_LEN, 42, 0) >= 0 ||
		 wl_mismatch(buf + FIFO_PACKET_LEN, FIFO_PACKET_LEN, 43, 0) >= 0)
		wl_fail("packet fifo: data changed");
}

static void check_closed(void)
{
	unsigned char buf[64];
	size_t got = wl_read_full(closed[0], buf, sizeof(buf), WL_TIMEOUT_MS);
	ssize_t eof = read(closed[0], buf, sizeof(buf));

	if (got != 10 || wl_mismatch(buf, 10, 33, 0) >= 0)
		wl_fail("pipe with closed writer: read %zu bytes, want the 10 written", got);
	if (eof != 0)
		wl_fail("pipe with closed writer: read after the data = %zd, want 0 (EOF)", eof);
}

/* check_fifo writes through a fresh open of the path, which must reach the same pipe. */
static void check_fifo(void)
{
	unsigned char buf[FIFO_LEN + 8];
	int fd = open("fifo", O_WRONLY | O_NONBLOCK);
	size_t got;

	if (fd < 0 || write(fd, "tail", 4) != 4) {
		wl_fail("fifo: write through a new open: %s", strerror(errno));
		return;
	}
	close(fd);
	got = wl_read_full(fifo_rd, buf, sizeof(buf), 0);
	if (got != FIFO_LEN + 4)
		wl_fail("fifo: read %zu bytes, want %d", got, FIFO_LEN + 4);
	else if (wl_mismatch(buf, FIFO_LEN, 35, 0) >= 0 || memcmp(buf + FIFO_LEN, "tail", 4))
		wl_fail("fifo: data changed");
}

int main(void)
{
	int size;

	wl_init();
	build_pipes();
	build_mixed();
	build_fifo();
	wl_ready();

	wl_wait_check();
	size = fcntl(full[0], F_GETPIPE_SZ);
	if (size != BIG_PIPE_SIZE)
		wl_fail("F_GETPIPE_SZ = %d, want %d", size, BIG_PIPE_SIZE);
	want_drain(plain[0], PLAIN_LEN, 30, "pipe");
	want_drain(full[0], full_len, 31, "full pipe");
	want_drain(from_child[0], CHILD_LEN, 32, "pipe the child wrote");
	check_closed();
	check_packets();
	check_mixed();
	check_fifo();
	check_packet_fifo();
	return wl_finish();
}
