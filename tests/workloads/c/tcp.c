/*
 * tcp - TCP over 127.0.0.1 with data in every queue.
 *
 * Both ends of an established connection live in this process. Each end
 * sends until its send buffer is full while the other reads nothing, so
 * there is unread data in both receive queues and unacknowledged data in
 * both send queues. The listener also has a connection that was made
 * and written to but not accepted. At check time every byte must arrive
 * once, in order, and the addresses and socket options must be the same.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define MAX_SEND (64UL << 20)
#define DRAIN_TIMEOUT_NS (10 * 1000000000LL)
#define KEEPIDLE_SEC 77

struct end {
	int fd;
	size_t sent, received;
	unsigned seed;
	struct sockaddr_in name, peer;
};

static struct end client = { .seed = 50 }, server = { .seed = 51 };
static int listener, pending;
static struct sockaddr_in listen_addr;

static void set_int(int fd, int level, int opt, int value)
{
	if (setsockopt(fd, level, opt, &value, sizeof(value)))
		wl_die("setsockopt");
}

static int get_int(int fd, int level, int opt)
{
	int value = -1;
	socklen_t len = sizeof(value);

	getsockopt(fd, level, opt, &value, &len);
	return value;
}

static void build_listener(void)
{
	socklen_t len = sizeof(listen_addr);

	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0)
		wl_die("socket");
	/* A small receive buffer makes the sender's queue fill quickly. */
	set_int(listener, SOL_SOCKET, SO_RCVBUF, 4096);
	if (bind(listener, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) ||
	    listen(listener, 8) ||
	    getsockname(listener, (struct sockaddr *)&listen_addr, &len))
		wl_die("listen on 127.0.0.1");
}

static void record_names(struct end *e)
{
	socklen_t a = sizeof(e->name), b = sizeof(e->peer);

	if (getsockname(e->fd, (struct sockaddr *)&e->name, &a) ||
	    getpeername(e->fd, (struct sockaddr *)&e->peer, &b))
		wl_die("getsockname");
}

static void build_connection(void)
{
	client.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (client.fd < 0)
		wl_die("socket");
	set_int(client.fd, SOL_SOCKET, SO_RCVBUF, 4096);
	if (connect(client.fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)))
		wl_die("connect");
	server.fd = accept(listener, NULL, NULL);
	if (server.fd < 0)
		wl_die("accept");
	set_int(client.fd, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(server.fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(server.fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPIDLE_SEC);
	fcntl(client.fd, F_SETFL, O_NONBLOCK);
	fcntl(server.fd, F_SETFL, O_NONBLOCK);
	record_names(&client);
	record_names(&server);
	pending = socket(AF_INET, SOCK_STREAM, 0);
	if (pending < 0 || connect(pending, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) ||
	    send(pending, "pending", 7, 0) != 7)
		wl_die("connect the pending connection");
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

static void fill_queues(void)
{
	int i, outq = 0, inq = 0;

	/* Two passes, because the first one's data may still be moving to the peer. */
	for (i = 0; i < 2; i++) {
		while (client.sent < MAX_SEND && send_some(&client))
			;
		while (server.sent < MAX_SEND && send_some(&server))
			;
		usleep(100000);
	}
	ioctl(client.fd, SIOCOUTQ, &outq);
	ioctl(server.fd, SIOCINQ, &inq);
	if (outq <= 0 || inq <= 0) {
		errno = EAGAIN;
		wl_die("fill the send and receive queues");
	}
}

static void want_names(const struct end *e, const char *what)
{
	struct sockaddr_in name, peer;
	socklen_t a = sizeof(name), b = sizeof(peer);

	if (getsockname(e->fd, (struct sockaddr *)&name, &a) ||
	    getpeername(e->fd, (struct sockaddr *)&peer, &b))
		wl_fail("%s: getsockname/getpeername: %s", what, strerror(errno));
	else if (memcmp(&name, &e->name, sizeof(name)) || memcmp(&peer, &e->peer, sizeof(peer)))
		wl_fail("%s: now %s:%d, peer port %d; was port %d, peer port %d", what,
			inet_ntoa(name.sin_addr), ntohs(name.sin_port), ntohs(peer.sin_port),
			ntohs(e->name.sin_port), ntohs(e->peer.sin_port));
}

/* receive_some reads what is there from e and checks it against the peer's pattern. */
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

	while (wl_failed() == 0 &&
	       (client.received < server.sent || server.received < client.sent)) {
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

static void check_options(void)
{
	if (get_int(client.fd, IPPROTO_TCP, TCP_NODELAY) != 1)
		wl_fail("client: TCP_NODELAY lost");
	if (get_int(server.fd, SOL_SOCKET, SO_KEEPALIVE) != 1)
		wl_fail("server: SO_KEEPALIVE lost");
	if (get_int(server.fd, IPPROTO_TCP, TCP_KEEPIDLE) != KEEPIDLE_SEC)
		wl_fail("server: TCP_KEEPIDLE = %d, want %d",
			get_int(server.fd, IPPROTO_TCP, TCP_KEEPIDLE), KEEPIDLE_SEC);
}

static void check_listener(void)
{
	char buf[8] = "";
	struct pollfd p = { .fd = listener, .events = POLLIN };
	int conn, fresh;

	if (poll(&p, 1, WL_TIMEOUT_MS) != 1 || (conn = accept(listener, NULL, NULL)) < 0) {
		wl_fail("accept the pending connection: %s", strerror(errno));
		return;
	}
	if (wl_read_full(conn, buf, 7, WL_TIMEOUT_MS) != 7 || memcmp(buf, "pending", 7))
		wl_fail("pending connection: did not read \"pending\"");
	fresh = socket(AF_INET, SOCK_STREAM, 0);
	if (fresh < 0 || connect(fresh, (struct sockaddr *)&listen_addr, sizeof(listen_addr)))
		wl_fail("connect to the listener: %s", strerror(errno));
}

int main(void)
{
	wl_init();
	build_listener();
	build_connection();
	fill_queues();
	wl_ready();

	wl_wait_check();
	want_names(&client, "client");
	want_names(&server, "server");
	check_options();
	drain();
	check_listener();
	return wl_finish();
}
