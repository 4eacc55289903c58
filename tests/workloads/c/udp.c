/*
 * udp - UDP sockets on 127.0.0.1, bound and connected, with datagrams queued.
 *
 * Three datagrams from a connected socket and one from an unconnected
 * socket wait on the bound socket. One datagram from the bound socket
 * waits on the connected socket. Order, boundaries and source ports must stay,
 * and the connected socket must still filter on its peer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

static int bound, connected, other;
static struct sockaddr_in bound_addr, connected_addr, other_addr;

static int udp_socket(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) ||
	    getsockname(fd, (struct sockaddr *)addr, &len))
		wl_die("bind UDP socket to 127.0.0.1");
	return fd;
}

static void send_to(int fd, const char *msg, const struct sockaddr_in *to)
{
	ssize_t n = to ? sendto(fd, msg, strlen(msg), 0, (const struct sockaddr *)to, sizeof(*to))
		       : send(fd, msg, strlen(msg), 0);

	if (n != (ssize_t)strlen(msg))
		wl_die("send datagram");
}

static void want_datagram(int fd, const char *want, const struct sockaddr_in *from,
			  const char *what)
{
	char buf[64];
	struct sockaddr_in src;
	socklen_t len = sizeof(src);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	poll(&p, 1, WL_TIMEOUT_MS);
	n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&src, &len);

	if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
		wl_fail("%s: received %zd bytes, want the %zu of \"%s\"", what, n, strlen(want),
			want);
	else if (src.sin_port != from->sin_port || src.sin_addr.s_addr != from->sin_addr.s_addr)
		wl_fail("%s: source port %d, want %d", what, ntohs(src.sin_port),
			ntohs(from->sin_port));
}

static void check_names(void)
{
	struct sockaddr_in name, peer;
	socklen_t a = sizeof(name), b = sizeof(peer);

	if (getsockname(bound, (struct sockaddr *)&name, &a) || name.sin_port != bound_addr.sin_port)
		wl_fail("bound socket: port changed");
	if (getpeername(connected, (struct sockaddr *)&peer, &b) ||
	    peer.sin_port != bound_addr.sin_port)
		wl_fail("connected socket: peer changed");
	if (getpeername(bound, (struct sockaddr *)&peer, &b) == 0 || errno != ENOTCONN)
		wl_fail("bound socket: became connected");
}

int main(void)
{
	wl_init();
	bound = udp_socket(&bound_addr);
	connected = udp_socket(&connected_addr);
	other = udp_socket(&other_addr);
	if (connect(connected, (struct sockaddr *)&bound_addr, sizeof(bound_addr)))
		wl_die("connect UDP socket");
	send_to(connected, "first", NULL);
	send_to(connected, "second datagram", NULL);
	send_to(other, "from other", &bound_addr);
	send_to(connected, "3", NULL);
	send_to(bound, "reply", &connected_addr);
	wl_ready();

	wl_wait_check();
	check_names();
	want_datagram(bound, "first", &connected_addr, "bound socket, datagram 1");
	want_datagram(bound, "second datagram", &connected_addr, "bound socket, datagram 2");
	want_datagram(bound, "from other", &other_addr, "bound socket, datagram 3");
	want_datagram(bound, "3", &connected_addr, "bound socket, datagram 4");
	want_datagram(connected, "reply", &bound_addr, "connected socket");
	/* A connected socket drops datagrams from anyone but its peer. */
	sendto(other, "stray", 5, 0, (struct sockaddr *)&connected_addr, sizeof(connected_addr));
	sendto(bound, "fresh", 5, 0, (struct sockaddr *)&connected_addr, sizeof(connected_addr));
	want_datagram(connected, "fresh", &bound_addr, "connected socket after a stray datagram");
	if (send(connected, "again", 5, 0) != 5)
		wl_fail("send on the connected socket: %s", strerror(errno));
	want_datagram(bound, "again", &connected_addr, "bound socket, fresh datagram");
	return wl_finish();
}
