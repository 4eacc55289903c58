package scenario

// EchoPort is the guest port EchoServerSource listens on.
const EchoPort = 7007

// EchoServerSource is a C program that listens on EchoPort on every
// IPv4 address, prints READY, then serves one connection at a time and
// writes back every byte it reads.
const EchoServerSource = `#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(7007)};
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4) < 0) {
		perror("listen");
		return 1;
	}
	printf("READY\n");
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			perror("accept");
			return 1;
		}
		printf("accepted\n");
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0) {
				printf("closed: read returned %zd\n", n);
				break;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(fd, buf + off, n - off);
				if (w <= 0) {
					perror("write");
					break;
				}
				off += w;
			}
		}
		close(fd);
	}
}
`
