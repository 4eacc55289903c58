/*
 * unixsock - Unix domain sockets of every type with data queued.
 *
 * A stream socketpair with unread data both ways, a datagram and a
 * seqpacket socketpair whose message boundaries must stay, a datagram
 * socket bound to a path with a queued message from a connected peer, a
 * socket bound to an abstract name with a queued message, and a
 * listening socket bound to a path with a connection that was made and
 * written to but not yet accepted. Bound names must still reach the same
 * sockets through a fresh connect or sendto.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wl.h"

#define STREAM_A_LEN 4000
#define STREAM_B_LEN 3000

static int stream[2], dgram[2], seqpacket[2];
static int bound, bound_peer, abstract, listener, pending_client;
static struct sockaddr_un abstract_addr;
static socklen_t abstract_len;

static socklen_t path_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

static void send_pattern(int fd, size_t n, unsigned seed)
{
	unsigned char buf[8192];

	wl_fill(buf, n, seed, 0);
	if (n > sizeof(buf) || wl_write_all(fd, buf, n))
		wl_die("write socket");
}

static void build_pairs(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, stream) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, seqpacket))
		wl_die("socketpair");
	send_pattern(stream[0], STREAM_A_LEN, 40);
	send_pattern(stream[1], STREAM_B_LEN, 41);
	if (send(dgram[0], "0123456789", 10, 0) != 10 || send(dgram[0], "x", 1, 0) != 1 ||
	    send(seqpacket[1], "record one", 10, 0) != 10 ||
	    send(seqpacket[1], "record two!", 11, 0) != 11)
		wl_die("send");
}

static void build_named(void)
{
	struct sockaddr_un sa;
	socklen_t len = path_addr(&sa, "dgram.sock");

	bound = socket(AF_UNIX, SOCK_DGRAM, 0);
	bound_peer = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bound < 0 || bound_peer < 0 || bind(bound, (struct sockaddr *)&sa, len) ||
	    connect(bound_peer, (struct sockaddr *)&sa, len) ||
	    send(bound_peer, "hello", 5, 0) != 5)
		wl_die("bound datagram socket");
	memset(&abstract_addr, 0, sizeof(abstract_addr));
	abstract_addr.sun_family = AF_UNIX;
	/* The pid keeps the name unique in the network namespace. */
	abstract_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				   (size_t)snprintf(abstract_addr.sun_path + 1,
						    sizeof(abstract_addr.sun_path) - 1,
						    "ksu-wl-%d", getpid()));
	abstract = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (abstract < 0 || bind(abstract, (struct sockaddr *)&abstract_addr, abstract_len) ||
	    sendto(bound_peer, "abs", 3, 0, (struct sockaddr *)&abstract_addr, abstract_len) != 3)
		wl_die("abstract socket");
}

static void build_listener(void)
{
	struct sockaddr_un sa;
	socklen_t len = path_addr(&sa, "listen.sock");

	listener = socket(AF_UNIX, SOCK_STREAM, 0);
	pending_client = socket(AF_UNIX, SOCK_STREAM, 0);
	if (listener < 0 || pending_client < 0 || bind(listener, (struct sockaddr *)&sa, len) ||
	    listen(listener, 8) || connect(pending_client, (struct sockaddr *)&sa, len) ||
	    send(pending_client, "ping", 4, 0) != 4)
		wl_die("listening socket");
}

static void want_stream(int fd, size_t n, unsigned seed, const char *what)
{
	static unsigned char buf[8193];
	size_t got;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	got = wl_read_full(fd, buf, sizeof(buf), 0);
	if (got != n)
		wl_fail("%s: read %zu bytes, want %zu", what, got, n);
	else if (wl_mismatch(buf, n, seed, 0) >= 0)
		wl_fail("%s: data changed", what);
}

static void want_message(int fd, const char *want, const char *what)
{
	char buf[64];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
		wl_fail("%s: received %zd bytes, want the %zu of \"%s\"", what, n, strlen(want),
			want);
}

static void check_pairs(void)
{
	want_stream(stream[1], STREAM_A_LEN, 40, "stream socketpair, first end's data");
	want_stream(stream[0], STREAM_B_LEN, 41, "stream socketpair, second end's data");
	want_message(dgram[1], "0123456789", "datagram socketpair, message 1");
	want_message(dgram[1], "x", "datagram socketpair, message 2");
	want_message(seqpacket[0], "record one", "seqpacket socketpair, record 1");
	want_message(seqpacket[0], "record two!", "seqpacket socketpair, record 2");
}

static void want_name(int fd, const struct sockaddr_un *want, socklen_t want_len,
		      const char *what)
{
	struct sockaddr_un got;
	socklen_t len = sizeof(got);
	size_t n = want_len - offsetof(struct sockaddr_un, sun_path);

	if (getsockname(fd, (struct sockaddr *)&got, &len) || len != want_len ||
	    memcmp(got.sun_path, want->sun_path, n))
		wl_fail("%s: getsockname changed", what);
}

static void check_named(void)
{
	struct sockaddr_un sa;
	socklen_t len = path_addr(&sa, "dgram.sock");
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	want_name(abstract, &abstract_addr, abstract_len, "abstract socket");
	want_message(bound, "hello", "socket bound to a path");
	want_message(abstract, "abs", "socket bound to an abstract name");
	if (fd < 0 || sendto(fd, "new", 3, 0, (struct sockaddr *)&sa, len) != 3 ||
	    sendto(fd, "new2", 4, 0, (struct sockaddr *)&abstract_addr, abstract_len) != 4)
		wl_fail("sendto a bound name: %s", strerror(errno));
	want_message(bound, "new", "socket bound to a path, fresh message");
	want_message(abstract, "new2", "socket bound to an abstract name, fresh message");
	if (send(bound_peer, "again", 5, 0) != 5)
		wl_fail("send on connected datagram socket: %s", strerror(errno));
	want_message(bound, "again", "socket bound to a path, from its connected peer");
	if (fd >= 0)
		close(fd);
}

static void check_listener(void)
{
	struct sockaddr_un sa;
	socklen_t len = path_addr(&sa, "listen.sock");
	char buf[8] = "";
	int conn, fresh;

	want_name(listener, &sa, len, "listening socket");
	fcntl(listener, F_SETFL, O_NONBLOCK);
	conn = accept(listener, NULL, NULL);
	if (conn < 0) {
		wl_fail("accept the pending connection: %s", strerror(errno));
		return;
	}
	if (wl_read_full(conn, buf, 4, WL_TIMEOUT_MS) != 4 || memcmp(buf, "ping", 4))
		wl_fail("pending connection: did not read \"ping\"");
	if (send(conn, "pong", 4, 0) != 4 ||
	    wl_read_full(pending_client, buf, 4, WL_TIMEOUT_MS) != 4 || memcmp(buf, "pong", 4))
		wl_fail("pending connection: client did not read \"pong\"");
	fresh = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fresh < 0 || connect(fresh, (struct sockaddr *)&sa, len))
		wl_fail("connect to the listening socket: %s", strerror(errno));
	else if (accept(listener, NULL, NULL) < 0)
		wl_fail("accept a fresh connection: %s", strerror(errno));
}

int main(void)
{
	wl_init();
	build_pairs();
	build_named();
	build_listener();
	wl_ready();

	wl_wait_check();
	check_pairs();
	check_named();
	check_listener();
	return wl_finish();
}
