/* Tracee for the engine tests: a parent and a child joined by a pipe
 * that holds data in flight at the dump. With "socket" as argument the
 * parent also holds a netlink socket, a family the dump must reject.
 * Usage: tree [socket] */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int p[2];

	closefrom(3); /* drop descriptors leaked by whatever started the test */
	if (argc > 1 && strcmp(argv[1], "socket") == 0)
		socket(AF_NETLINK, SOCK_RAW, 0); /* NETLINK_ROUTE */
	pipe(p);
	pid_t kid = fork();
	if (kid == 0) {
		char buf[64] = {0};
		close(p[1]);
		sleep(2); /* the dump happens while the data waits in the pipe */
		if (read(p[0], buf, sizeof(buf) - 1) != 13 || strcmp(buf, "in the pipe!\n") != 0) {
			printf("FAIL: child read %s\n", buf);
			return 1;
		}
		return 0;
	}
	close(p[0]);
	write(p[1], "in the pipe!\n", 13);
	printf("READY %d\n", getpid());
	fflush(stdout);
	int status;
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("FAIL: child status %#x\n", status);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
