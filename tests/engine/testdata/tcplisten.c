/*
 * tcplisten - TCP listeners on 127.0.0.1 and ::1 that must keep their
 * port, backlog and options across a dump and restore.
 *
 * The IPv4 listener has SO_REUSEADDR and SO_KEEPALIVE set and a backlog
 * of 7; the IPv6 one is IPV6_V6ONLY. At check time each must still be
 * bound to its port with the same options and accept a fresh
 * connection that carries a byte each way.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

static int listener4, listener6;
static struct sockaddr_in addr4;
static struct sockaddr_in6 addr6;

static int get_int(int fd, int level, int opt)
{
	int value = -1;
	socklen_t len = sizeof(value);

	getsockopt(fd, level, opt, &value, &len);
	return value;
}

static int listen_on(struct sockaddr *sa, socklen_t len, int backlog)
{
	int one = 1, fd = socket(sa->sa_family, SOCK_STREAM, 0);

	if (fd < 0)
		wl_die("socket");
	if (sa->sa_family == AF_INET) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, sa, len) || listen(fd, backlog) || getsockname(fd, sa, &len))
		wl_die("listen");
	return fd;
}

/* check_backlog compares the listen backlog, which tcpi_sacked holds for a listener. */
static void check_backlog(int fd, unsigned want, const char *what)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || ti.tcpi_sacked != want)
		wl_fail("%s: backlog %u, want %u", what, ti.tcpi_sacked, want);
}

/* check_accept connects to sa, accepts on fd and sends a byte each way. */
static void check_accept(int fd, struct sockaddr *sa, socklen_t len, const char *what)
{
	struct sockaddr_storage got;
	socklen_t got_len = sizeof(got);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c = 0;
	int client, conn;

	if (getsockname(fd, (struct sockaddr *)&got, &got_len) || got_len != len ||
	    memcmp(&got, sa, len)) {
		wl_fail("%s: getsockname changed", what);
		return;
	}
	if (get_int(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) {
		wl_fail("%s: not listening", what);
		return;
	}
	client = socket(sa->sa_family, SOCK_STREAM, 0);
	if (client < 0 || connect(client, sa, len)) {
		wl_fail("%s: connect: %s", what, strerror(errno));
		return;
	}
	if (poll(&p, 1, WL_TIMEOUT_MS) != 1 || (conn = accept(fd, NULL, NULL)) < 0) {
		wl_fail("%s: accept: %s", what, strerror(errno));
		return;
	}
	if (write(client, "x", 1) != 1 || read(conn, &c, 1) != 1 || c != 'x' ||
	    write(conn, "y", 1) != 1 || read(client, &c, 1) != 1 || c != 'y')
		wl_fail("%s: no byte each way over the accepted connection", what);
	close(conn);
	close(client);
}

int main(void)
{
	wl_init();
	addr4.sin_family = AF_INET;
	addr4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr6.sin6_family = AF_INET6;
	addr6.sin6_addr = in6addr_loopback;
	listener4 = listen_on((struct sockaddr *)&addr4, sizeof(addr4), 7);
	listener6 = listen_on((struct sockaddr *)&addr6, sizeof(addr6), 3);
	wl_ready();

	wl_wait_check();
	if (get_int(listener4, SOL_SOCKET, SO_REUSEADDR) != 1)
		wl_fail("IPv4 listener: SO_REUSEADDR lost");
	if (get_int(listener4, SOL_SOCKET, SO_KEEPALIVE) != 1)
		wl_fail("IPv4 listener: SO_KEEPALIVE lost");
	if (get_int(listener6, IPPROTO_IPV6, IPV6_V6ONLY) != 1)
		wl_fail("IPv6 listener: IPV6_V6ONLY lost");
	check_backlog(listener4, 7, "IPv4 listener");
	check_backlog(listener6, 3, "IPv6 listener");
	check_accept(listener4, (struct sockaddr *)&addr4, sizeof(addr4), "IPv4 listener");
	check_accept(listener6, (struct sockaddr *)&addr6, sizeof(addr6), "IPv6 listener");
	return wl_finish();
}
