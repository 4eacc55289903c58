package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/ksu-project/ksu/qemu"
)

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

// BootForwardGuest boots release rel as Boot does, with a free port
// 127.0.0.1:PORT on the host forwarded to guestPort in the guest.
// g.HostPort(guestPort) returns PORT. The caller closes the guest.
func BootForwardGuest(ctx context.Context, im Images, rel, workDir string, guestPort int) (*qemu.Guest, time.Duration, error) {
	cfg := im.GuestConfig(rel, workDir)
	cfg.Forwards = append(cfg.Forwards, qemu.Forward{GuestPort: guestPort})
	g, err := qemu.Start(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	info, err := g.WaitAgent(ctx)
	if err != nil {
		g.Close()
		return nil, 0, fmt.Errorf("boot %s: %w", rel, err)
	}
	if info.Release != rel {
		g.Close()
		return nil, 0, fmt.Errorf("boot %s: guest runs %s", rel, info.Release)
	}
	return g, time.Since(g.StartedAt()), nil
}
