/* Tracee for the engine tests: eventfds, an epoll instance, timerfds, a
 * signalfd, a memfd, a named FIFO with unread data, an O_APPEND file and
 * a file deleted while open. It prints READY, waits until the file
 * "check" appears in its directory, checks every object and prints PASS
 * or one FAIL line per loss.
 * Usage: fdkinds [KIND]  (KIND: damage that object before the check, so
 * the test can see the check catch a loss; "closed-target": also watch a
 * pipe with epoll and close its fd while a dup keeps the pipe open, which
 * the dump must reject) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NSEC 1000000000LL
#define PERIOD_NS 50000000LL
#define MEMFD_SIZE (3 * 4096 + 100)

static int counter, semaphore, epfd, ready_pipe[2], idle_pipe[2];
static int oneshot, periodic, sigfd, memfd, fifo_rd, fifo_wr, append_fd, deleted_fd;
static int failed;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); failed = 1; } while (0)

static void die(const char *what)
{
	printf("FAIL: setup %s: %s\n", what, strerror(errno));
	exit(2);
}

static unsigned char pattern(size_t i, unsigned seed) { return (unsigned char)(i * 7 + seed); }

static void watch(int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl");
}

static void build_events(void)
{
	struct itimerspec one = { .it_value.tv_sec = 3600 };
	struct itimerspec per = { .it_value.tv_nsec = PERIOD_NS, .it_interval.tv_nsec = PERIOD_NS };
	uint64_t five = 5;
	sigset_t set;

	counter = eventfd(0, EFD_NONBLOCK);
	semaphore = eventfd(3, EFD_NONBLOCK | EFD_SEMAPHORE);
	if (counter < 0 || semaphore < 0 || write(counter, &five, 8) != 8)
		die("eventfd");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || pipe(ready_pipe) || pipe(idle_pipe) || write(ready_pipe[1], "abc", 3) != 3)
		die("epoll");
	watch(counter, EPOLLIN, 0x1111);
	watch(ready_pipe[0], EPOLLIN | EPOLLET, 0x2222);
	watch(idle_pipe[0], EPOLLIN, 0x3333);
	oneshot = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (oneshot < 0 || periodic < 0 || timerfd_settime(oneshot, 0, &one, NULL) ||
	    timerfd_settime(periodic, 0, &per, NULL))
		die("timerfd");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	sigfd = signalfd(-1, &set, SFD_NONBLOCK);
	if (sigfd < 0)
		die("signalfd");
}

static void build_files(void)
{
	unsigned char buf[MEMFD_SIZE];
	size_t i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i, 3);
	memfd = memfd_create("ksu-test", MFD_ALLOW_SEALING);
	if (memfd < 0 || write(memfd, buf, sizeof(buf)) != sizeof(buf) || lseek(memfd, 100, SEEK_SET) != 100 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK))
		die("memfd");
	if (mkfifo("fifo", 0600))
		die("mkfifo");
	fifo_rd = open("fifo", O_RDONLY | O_NONBLOCK);
	fifo_wr = open("fifo", O_WRONLY);
	if (fifo_rd < 0 || fifo_wr < 0 || write(fifo_wr, "fifo data", 9) != 9)
		die("fifo");
	append_fd = open("append.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (append_fd < 0 || write(append_fd, "first\n", 6) != 6)
		die("append.log");
	for (i = 0; i < 8192; i++)
		buf[i % sizeof(buf)] = pattern(i, 21);
	deleted_fd = open("gone.dat", O_RDWR | O_CREAT | O_TRUNC, 0640);
	for (i = 0; i < 8192; i++)
		if (deleted_fd < 0 || write(deleted_fd, &(unsigned char){ pattern(i, 21) }, 1) != 1)
			die("gone.dat");
	if (lseek(deleted_fd, 100, SEEK_SET) != 100 || unlink("gone.dat"))
		die("unlink gone.dat");
}

/* damage breaks one object the way a lossy restore would. */
static void damage(const char *kind)
{
	struct itimerspec off = { 0 };
	uint64_t v;
	sigset_t set;
	char buf[16];

	if (!strcmp(kind, "eventfd"))
		read(counter, &v, 8);
	else if (!strcmp(kind, "epoll"))
		epoll_ctl(epfd, EPOLL_CTL_DEL, idle_pipe[0], NULL);
	else if (!strcmp(kind, "timerfd"))
		timerfd_settime(oneshot, 0, &off, NULL);
	else if (!strcmp(kind, "signalfd")) {
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		signalfd(sigfd, &set, 0);
	} else if (!strcmp(kind, "memfd"))
		pwrite(memfd, "X", 1, 5000);
	else if (!strcmp(kind, "fifo"))
		read(fifo_rd, buf, sizeof(buf));
	else if (!strcmp(kind, "append"))
		fcntl(append_fd, F_SETFL, 0);
	else if (!strcmp(kind, "deleted"))
		pwrite(deleted_fd, "X", 1, 200);
}

static void check_eventfds(void)
{
	uint64_t v = 0;
	int i;

	if (read(counter, &v, 8) != 8 || v != 5)
		FAIL("eventfd: read = %llu, want 5", (unsigned long long)v);
	for (i = 0; i < 3; i++)
		if (read(semaphore, &v, 8) != 8 || v != 1)
			FAIL("eventfd semaphore: read %d = %llu, want 1", i + 1, (unsigned long long)v);
	if (read(semaphore, &v, 8) != -1 || errno != EAGAIN)
		FAIL("eventfd semaphore: a fourth read succeeded");
}

/* check_epoll runs while the counter is still readable. */
static void check_epoll(void)
{
	struct epoll_event ev[8];
	uint32_t got[4] = { 0 }, want[4] = { 0, EPOLLIN, EPOLLIN, 0 };
	int i, n = epoll_wait(epfd, ev, 8, 0);

	for (i = 0; i < n; i++)
		if (ev[i].data.u64 % 0x1111 == 0 && ev[i].data.u64 / 0x1111 < 4)
			got[ev[i].data.u64 / 0x1111] = ev[i].events;
		else
			FAIL("epoll: event with unknown data %#llx", (unsigned long long)ev[i].data.u64);
	for (i = 1; i < 4; i++)
		if (got[i] != want[i])
			FAIL("epoll: data %#x events = %#x, want %#x", i * 0x1111, got[i], want[i]);
	if (write(idle_pipe[1], "x", 1) != 1)
		FAIL("epoll: write idle pipe: %s", strerror(errno));
	n = epoll_wait(epfd, ev, 8, 1000);
	for (i = 0; i < n; i++)
		if (ev[i].data.u64 == 0x3333)
			return;
	FAIL("epoll: the idle pipe is no longer in the interest list");
}

static void check_timerfds(void)
{
	struct itimerspec cur;
	uint64_t ticks = 0;
	long long left;

	if (timerfd_gettime(oneshot, &cur))
		FAIL("timerfd: gettime: %s", strerror(errno));
	left = cur.it_value.tv_sec * NSEC + cur.it_value.tv_nsec;
	if (left <= 3500 * NSEC || left > 3600 * NSEC || cur.it_interval.tv_sec || cur.it_interval.tv_nsec)
		FAIL("timerfd one-shot: %lld ns left, want 3500 to 3600 s", left);
	if (timerfd_gettime(periodic, &cur) || cur.it_interval.tv_nsec != PERIOD_NS)
		FAIL("timerfd periodic: interval %ld ns, want %lld", (long)cur.it_interval.tv_nsec, PERIOD_NS);
	/* The ticks saved at the dump are readable at once. */
	if (read(periodic, &ticks, 8) != 8 || ticks < 1)
		FAIL("timerfd periodic: no expirations pending: %s", strerror(errno));
	if (!(fcntl(periodic, F_GETFD) & FD_CLOEXEC))
		FAIL("timerfd periodic: FD_CLOEXEC lost");
}

static void check_signalfd(void)
{
	struct signalfd_siginfo si;

	kill(getpid(), SIGUSR1);
	if (read(sigfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1)
		FAIL("signalfd: SIGUSR1 not read: %s", strerror(errno));
	if (!(fcntl(sigfd, F_GETFL) & O_NONBLOCK))
		FAIL("signalfd: O_NONBLOCK lost");
}

static void check_memfd(void)
{
	unsigned char buf[MEMFD_SIZE];
	char link[128] = "";
	struct stat st;
	size_t i;

	if (lseek(memfd, 0, SEEK_CUR) != 100)
		FAIL("memfd: offset %lld, want 100", (long long)lseek(memfd, 0, SEEK_CUR));
	if (fstat(memfd, &st) || st.st_size != MEMFD_SIZE)
		FAIL("memfd: size %lld, want %d", (long long)st.st_size, MEMFD_SIZE);
	if (pread(memfd, buf, sizeof(buf), 0) != sizeof(buf))
		FAIL("memfd: short read");
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != pattern(i, 3)) {
			FAIL("memfd: byte %zu changed", i);
			break;
		}
	if (fcntl(memfd, F_GET_SEALS) != (F_SEAL_GROW | F_SEAL_SHRINK))
		FAIL("memfd: seals %#x, want %#x", fcntl(memfd, F_GET_SEALS), F_SEAL_GROW | F_SEAL_SHRINK);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", memfd);
	i = readlink(link, (char *)buf, 100);
	buf[i < 100 ? i : 0] = 0;
	if (strcmp((char *)buf, "/memfd:ksu-test (deleted)"))
		FAIL("memfd: link %s, want /memfd:ksu-test (deleted)", buf);
}

static void check_fifo(void)
{
	char buf[16] = "";

	if (read(fifo_rd, buf, sizeof(buf)) != 9 || memcmp(buf, "fifo data", 9))
		FAIL("fifo: read \"%s\", want \"fifo data\"", buf);
	if (write(fifo_wr, "more", 4) != 4 || read(fifo_rd, buf, 4) != 4 || memcmp(buf, "more", 4))
		FAIL("fifo: the two ends are no longer one FIFO");
}

static void check_append(void)
{
	char buf[32] = "";
	int fd = open("append.log", O_RDWR);

	/* Another fd extends the file first, so a lost O_APPEND overwrites it. */
	if (fd < 0 || pwrite(fd, "XX", 2, 6) != 2 || write(append_fd, "second\n", 7) != 7)
		FAIL("append: write: %s", strerror(errno));
	if (pread(fd, buf, sizeof(buf) - 1, 0) < 0 || strcmp(buf, "first\nXXsecond\n"))
		FAIL("append: append.log = \"%s\", want \"first\\nXXsecond\\n\"", buf);
	close(fd);
}

static void check_deleted(void)
{
	unsigned char buf[200];
	char link[64], target[256] = "";
	struct stat st;
	size_t i;

	if (fstat(deleted_fd, &st) || st.st_nlink != 0 || st.st_size != 8192 || (st.st_mode & 07777) != 0640)
		FAIL("deleted file: nlink %ju size %jd mode %o, want 0, 8192, 640", (uintmax_t)st.st_nlink,
		     (intmax_t)st.st_size, st.st_mode & 07777);
	if (lseek(deleted_fd, 0, SEEK_CUR) != 100)
		FAIL("deleted file: offset %lld, want 100", (long long)lseek(deleted_fd, 0, SEEK_CUR));
	if (read(deleted_fd, buf, sizeof(buf)) != sizeof(buf))
		FAIL("deleted file: short read");
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != pattern(100 + i, 21)) {
			FAIL("deleted file: byte %zu changed", 100 + i);
			break;
		}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", deleted_fd);
	readlink(link, target, sizeof(target) - 1);
	if (!strstr(target, "/gone.dat (deleted)"))
		FAIL("deleted file: link %s, want .../gone.dat (deleted)", target);
}

int main(int argc, char **argv)
{
	int i;

	closefrom(3); /* drop descriptors leaked by whatever started the test */
	build_events();
	build_files();
	if (argc > 1 && !strcmp(argv[1], "closed-target")) {
		int p[2];

		if (pipe(p) || dup2(p[0], 200) != 200)
			die("closed-target pipe");
		watch(p[0], EPOLLIN, 0x9999);
		close(p[0]);
	}
	usleep(3 * PERIOD_NS / 1000); /* let the periodic timer expire before the dump */
	printf("READY %d\n", getpid());
	fflush(stdout);
	for (i = 0; i < 6000 && access("check", F_OK); i++)
		usleep(10000);
	if (argc > 1)
		damage(argv[1]);
	check_epoll();
	check_eventfds();
	check_timerfds();
	check_signalfd();
	check_memfd();
	check_fifo();
	check_append();
	check_deleted();
	if (!failed)
		printf("PASS\n");
	fflush(stdout);
	return failed;
}
