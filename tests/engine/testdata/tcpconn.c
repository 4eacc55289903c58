/*
 * tcpconn - an established TCP connection over 127.0.0.1 with data in
 * every queue, both ends in this process.
 *
 * Each end sends until its send buffer is full while the other reads
 * nothing, so both receive queues hold unread data and both send queues
 * hold data not yet acknowledged. At check time every byte must arrive
 * exactly once and in order, and the addresses and TCP_NODELAY must be
 * the same.
 *
 * With the argument "serve" it only listens and prints the port after
 * READY; a peer outside the process connects, the connection is
 * accepted and, at check time, must still carry a line each way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define MAX_SEND (32UL << 20)
#define DRAIN_TIMEOUT_NS (20 * 1000000000LL)

struct end {
	int fd;
	size_t sent, received;
	unsigned seed;
	struct sockaddr_in name, peer;
};

static struct end client = { .seed = 60 }, server = { .seed = 61 };

static void set_int(int fd, int level, int opt, int value)
{
	if (setsockopt(fd, level, opt, &value, sizeof(value)))
		wl_die("setsockopt");
}

static int listen_loopback(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof(*sa)) || listen(fd, 4) ||
	    getsockname(fd, (struct sockaddr *)sa, &len))
		wl_die("listen on 127.0.0.1");
	return fd;
}

static void record_names(struct end *e)
{
	socklen_t a = sizeof(e->name), b = sizeof(e->peer);

	if (getsockname(e->fd, (struct sockaddr *)&e->name, &a) ||
	    getpeername(e->fd, (struct sockaddr *)&e->peer, &b))
		wl_die("getsockname");
}

static void want_names(const struct end *e, const char *what)
{
	struct sockaddr_in name, peer;
	socklen_t a = sizeof(name), b = sizeof(peer);

	if (getsockname(e->fd, (struct sockaddr *)&name, &a) ||
	    getpeername(e->fd, (struct sockaddr *)&peer, &b))
		wl_fail("%s: getsockname/getpeername: %s", what, strerror(errno));
	else if (memcmp(&name, &e->name, sizeof(name)) || memcmp(&peer, &e->peer, sizeof(peer)))
		wl_fail("%s: addresses changed", what);
}

/* send_some sends the next pattern bytes and returns 0 once the socket would block. */
static int send_some(struct end *e)
{
	unsigned char buf[16384];
	ssize_t r;

	wl_fill(buf, sizeof(buf), e->seed, e->sent);
	r = send(e->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (r < 0 && errno == EAGAIN)
		return 0;
	if (r < 0)
		wl_die("send");
	e->sent += (size_t)r;
	return 1;
}

static void receive_some(struct end *e, const struct end *peer, const char *what)
{
	unsigned char buf[65536];
	ssize_t r = recv(e->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (r < 0 && errno == EAGAIN)
		return;
	if (r <= 0) {
		wl_fail("%s: recv = %zd after %zu bytes: %s", what, r, e->received,
			strerror(errno));
		e->received = peer->sent + 1;
		return;
	}
	if (e->received + (size_t)r > peer->sent)
		wl_fail("%s: %zu bytes more than were sent", what,
			e->received + (size_t)r - peer->sent);
	else if (wl_mismatch(buf, (size_t)r, peer->seed, e->received) >= 0)
		wl_fail("%s: byte %zu differs", what,
			e->received + (size_t)wl_mismatch(buf, (size_t)r, peer->seed, e->received));
	e->received += (size_t)r;
}

static void drain(void)
{
	long long deadline = wl_now_ns(CLOCK_MONOTONIC) + DRAIN_TIMEOUT_NS;
	struct pollfd p[2] = { { .fd = client.fd, .events = POLLIN },
			       { .fd = server.fd, .events = POLLIN } };

	while (!wl_failed() && (client.received < server.sent || server.received < client.sent)) {
		if (wl_now_ns(CLOCK_MONOTONIC) > deadline) {
			wl_fail("timed out: client read %zu of %zu, server read %zu of %zu",
				client.received, server.sent, server.received, client.sent);
			return;
		}
		poll(p, 2, 100);
		receive_some(&client, &server, "client");
		receive_some(&server, &client, "server");
	}
}

static int pair(void)
{
	struct sockaddr_in sa;
	int i, listener = listen_loopback(&sa);

	client.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (client.fd < 0)
		wl_die("socket");
	set_int(client.fd, SOL_SOCKET, SO_RCVBUF, 4096);
	if (connect(client.fd, (struct sockaddr *)&sa, sizeof(sa)))
		wl_die("connect");
	server.fd = accept(listener, NULL, NULL);
	if (server.fd < 0)
		wl_die("accept");
	set_int(client.fd, IPPROTO_TCP, TCP_NODELAY, 1);
	record_names(&client);
	record_names(&server);
	for (i = 0; i < 2; i++) {
		while (client.sent < MAX_SEND && send_some(&client))
			;
		while (server.sent < MAX_SEND && send_some(&server))
			;
		usleep(100000);
	}
	wl_ready();

	wl_wait_check();
	want_names(&client, "client");
	want_names(&server, "server");
	if (wl_failed() == 0) {
		int v = 0;
		socklen_t len = sizeof(v);

		getsockopt(client.fd, IPPROTO_TCP, TCP_NODELAY, &v, &len);
		if (v != 1)
			wl_fail("client: TCP_NODELAY lost");
	}
	drain();
	return wl_finish();
}

/* serve accepts one connection from outside and echoes a line at check time. */
static int serve(void)
{
	struct sockaddr_in sa;
	char line[64];
	int listener = listen_loopback(&sa), conn;
	ssize_t n;

	wl_ready();
	printf("PORT %d\n", ntohs(sa.sin_port));
	conn = accept(listener, NULL, NULL);
	if (conn < 0)
		wl_die("accept");
	printf("ACCEPTED\n");

	wl_wait_check();
	n = recv(conn, line, sizeof(line) - 1, 0);
	if (n <= 0) {
		wl_fail("outside peer: recv = %zd: %s", n, strerror(errno));
	} else {
		line[n] = 0;
		if (strcmp(line, "after\n") != 0)
			wl_fail("outside peer: received \"%s\", want \"after\\n\"", line);
		else if (send(conn, "reply\n", 6, 0) != 6)
			wl_fail("outside peer: send: %s", strerror(errno));
	}
	return wl_finish();
}

int main(int argc, char **argv)
{
	wl_init();
	if (argc > 1 && strcmp(argv[1], "serve") == 0)
		return serve();
	return pair();
}
