/*
 * tcpdual - a server laid out like redis-server: TCP listeners on
 * 0.0.0.0 and [::] (IPV6_V6ONLY) on one port, both with SO_REUSEADDR,
 * and one connection accepted from a peer outside the process.
 *
 * Like redis-server, it watches the listeners and the connection with
 * epoll, so that a dump meets each socket twice: as an epoll target and
 * as a descriptor. Like redis-server's background threads, a second
 * thread waits in pause() for the whole run.
 *
 * It prints READY, then "PORT <n>", accepts one connection on the IPv4
 * listener and prints ACCEPTED. With the argument "conn-first" it then
 * moves the connection to a descriptor below the listeners, so that a
 * dump meets the connection before the listeners that share its port.
 * With "v6-first" it creates the IPv6 listener before the IPv4 one.
 *
 * At check time the connection must carry a line each way ("after\n"
 * in, "reply\n" out), and each listener must still be bound to its
 * port with its options and accept a fresh connection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wl.h"

static int get_int(int fd, int level, int opt)
{
	int value = -1;
	socklen_t len = sizeof(value);

	getsockopt(fd, level, opt, &value, &len);
	return value;
}

static int listen_on(struct sockaddr *sa, socklen_t len)
{
	int one = 1, fd = socket(sa->sa_family, SOCK_STREAM, 0);

	if (fd < 0)
		wl_die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		wl_die("setsockopt SO_REUSEADDR");
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		wl_die("setsockopt IPV6_V6ONLY");
	if (bind(fd, sa, len) || listen(fd, 16) || getsockname(fd, sa, &len))
		wl_die("listen");
	return fd;
}

/* check_listener connects to loopback on fd's port, accepts and sends a byte each way. */
static void check_listener(int fd, struct sockaddr *loop, socklen_t len, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c = 0;
	int client, conn;

	if (get_int(fd, SOL_SOCKET, SO_ACCEPTCONN) != 1) {
		wl_fail("%s: not listening", what);
		return;
	}
	if (get_int(fd, SOL_SOCKET, SO_REUSEADDR) != 1)
		wl_fail("%s: SO_REUSEADDR lost", what);
	client = socket(loop->sa_family, SOCK_STREAM, 0);
	if (client < 0 || connect(client, loop, len)) {
		wl_fail("%s: connect: %s", what, strerror(errno));
		return;
	}
	if (poll(&p, 1, WL_TIMEOUT_MS) != 1 || (conn = accept(fd, NULL, NULL)) < 0) {
		wl_fail("%s: accept: %s", what, strerror(errno));
		close(client);
		return;
	}
	if (write(client, "x", 1) != 1 || read(conn, &c, 1) != 1 || c != 'x' ||
	    write(conn, "y", 1) != 1 || read(client, &c, 1) != 1 || c != 'y')
		wl_fail("%s: no byte each way over the accepted connection", what);
	close(conn);
	close(client);
}

/* check_conn reads the outside peer's line and sends a reply. */
static void check_conn(int conn)
{
	char line[64];
	ssize_t n = recv(conn, line, sizeof(line) - 1, 0);

	if (n <= 0) {
		wl_fail("outside peer: recv = %zd: %s", n, strerror(errno));
		return;
	}
	line[n] = 0;
	if (strcmp(line, "after\n") != 0)
		wl_fail("outside peer: received \"%s\", want \"after\\n\"", line);
	else if (send(conn, "reply\n", 6, 0) != 6)
		wl_fail("outside peer: send: %s", strerror(errno));
}

static int has_arg(int argc, char **argv, const char *arg)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], arg) == 0)
			return 1;
	return 0;
}

static void watch(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
		wl_die("epoll_ctl");
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in any4 = { .sin_family = AF_INET }, loop4;
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6 }, loop6;
	int low, listener4, listener6, conn, epfd;
	pthread_t thread;

	wl_init();
	if (pthread_create(&thread, NULL, idle, NULL))
		wl_die("pthread_create");
	/* Hold the lowest free descriptor for the connection in conn-first mode. */
	low = open("/dev/null", O_RDONLY);
	if (low < 0)
		wl_die("open /dev/null");
	any6.sin6_addr = in6addr_any;
	if (has_arg(argc, argv, "v6-first")) {
		listener6 = listen_on((struct sockaddr *)&any6, sizeof(any6));
		any4.sin_port = any6.sin6_port;
		listener4 = listen_on((struct sockaddr *)&any4, sizeof(any4));
	} else {
		listener4 = listen_on((struct sockaddr *)&any4, sizeof(any4));
		any6.sin6_port = any4.sin_port;
		listener6 = listen_on((struct sockaddr *)&any6, sizeof(any6));
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		wl_die("epoll_create1");
	watch(epfd, listener4);
	watch(epfd, listener6);
	wl_ready();
	printf("PORT %d\n", ntohs(any4.sin_port));

	conn = accept(listener4, NULL, NULL);
	if (conn < 0)
		wl_die("accept");
	if (has_arg(argc, argv, "conn-first")) {
		if (dup2(conn, low) < 0)
			wl_die("dup2");
		close(conn);
		conn = low;
	} else {
		close(low);
	}
	watch(epfd, conn);
	printf("ACCEPTED fd %d, listeners fd %d and %d\n", conn, listener4, listener6);

	wl_wait_check();
	check_conn(conn);
	if (get_int(listener6, IPPROTO_IPV6, IPV6_V6ONLY) != 1)
		wl_fail("IPv6 listener: IPV6_V6ONLY lost");
	loop4 = any4;
	loop4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	loop6 = any6;
	loop6.sin6_addr = in6addr_loopback;
	check_listener(listener4, (struct sockaddr *)&loop4, sizeof(loop4), "IPv4 listener");
	check_listener(listener6, (struct sockaddr *)&loop6, sizeof(loop6), "IPv6 listener");
	return wl_finish();
}
