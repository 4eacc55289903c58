/* Tracee for the engine tests: memory that a parent and its child share.
 * MAP_SHARED anonymous memory, a memfd mapped MAP_SHARED (its fd closed),
 * a regular file mapped MAP_SHARED and written through the mapping, a
 * deleted file mapped MAP_SHARED, and a deleted file mapped MAP_PRIVATE
 * with one page of the process's own. It prints READY, waits until the
 * file "check" appears, and checks content and sharing both ways: the
 * parent writes a token, the child answers token+1 in each shared region.
 * Usage: shmem [KIND]  (KIND: anon, memfd, file, deleted or private:
 * damage that region before the check) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define SIZE (16 * PAGE)
#define SLOT (SIZE - 16)

enum { ANON, MEMFD, FILEMAP, NSHARED };
static const char *names[NSHARED] = { "anon", "memfd", "file" };
static unsigned char *shared[NSHARED], *deleted, *private;
static int cmd[2], reply[2], failed;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); printf("\n"); failed = 1; } while (0)

static void die(const char *what)
{
	printf("FAIL: setup %s: %s\n", what, strerror(errno));
	exit(2);
}

static unsigned char pattern(size_t i, unsigned seed) { return (unsigned char)(i * 13 + seed); }

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(i, seed);
}

static long mismatch(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern(i, seed))
			return (long)i;
	return -1;
}

static unsigned char *map_file(const char *name, int flags, unsigned seed, int unlink_it)
{
	unsigned char buf[SIZE];
	unsigned char *p;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	fill(buf, SIZE, seed);
	if (fd < 0 || write(fd, buf, SIZE) != SIZE)
		die(name);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED || close(fd) || (unlink_it && unlink(name)))
		die(name);
	return p;
}

static void build(void)
{
	int fd = memfd_create("ksu-shm", 0);

	shared[ANON] = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared[ANON] == MAP_FAILED)
		die("mmap anon");
	fill(shared[ANON], SIZE, 1);
	if (fd < 0 || ftruncate(fd, SIZE))
		die("memfd");
	shared[MEMFD] = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shared[MEMFD] == MAP_FAILED || close(fd))
		die("mmap memfd");
	fill(shared[MEMFD], SIZE, 2);
	shared[FILEMAP] = map_file("shared.dat", MAP_SHARED, 0, 0);
	fill(shared[FILEMAP], SIZE, 3); /* the file holds the new content */
	deleted = map_file("deleted.dat", MAP_SHARED, 4, 1);
	private = map_file("private.dat", MAP_PRIVATE, 5, 1);
	fill(private + PAGE, PAGE, 6); /* a private copy of page 1 */
}

/* child answers each token with token+1, unless damage made its view private. */
static void child(const char *damage)
{
	char c, msg[128] = "";
	uint64_t token;

	while (read(cmd[0], &c, 1) != 1)
		if (errno != EINTR)
			_exit(3);
	for (int i = 0; i < NSHARED; i++) {
		if (damage && !strcmp(damage, names[i])) {
			unsigned char copy[SIZE];

			memcpy(copy, shared[i], SIZE);
			if (mmap(shared[i], SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				_exit(4);
			memcpy(shared[i], copy, SIZE);
		}
		memcpy(&token, shared[i] + SLOT, 8);
		token++;
		memcpy(shared[i] + SLOT + 8, &token, 8);
	}
	write(reply[1], msg, sizeof(msg));
	_exit(0);
}

static void check(const char *damage)
{
	uint64_t token = 0x6b7375ULL << 24 | (uint64_t)getpid(), got;
	char msg[128], c = 'c';
	long bad;
	int status;

	if (damage && !strcmp(damage, "deleted"))
		deleted[100] ^= 0xff;
	if (damage && !strcmp(damage, "private"))
		private[PAGE + 7] ^= 0xff;
	for (int i = 0; i < NSHARED; i++)
		if ((bad = mismatch(shared[i], SLOT, i + 1)) >= 0)
			FAIL("%s: byte %ld changed", names[i], bad);
	if ((bad = mismatch(deleted, SIZE, 4)) >= 0)
		FAIL("deleted: byte %ld changed", bad);
	if ((bad = mismatch(private, PAGE, 5)) >= 0 || (bad = mismatch(private + PAGE, PAGE, 6)) >= 0)
		FAIL("private: byte %ld of the first two pages changed", bad);
	for (int i = 0; i < NSHARED; i++)
		memcpy(shared[i] + SLOT, &token, 8);
	if (write(cmd[1], &c, 1) != 1 || read(reply[0], msg, sizeof(msg)) != sizeof(msg))
		FAIL("child: no reply");
	for (int i = 0; i < NSHARED; i++) {
		memcpy(&got, shared[i] + SLOT + 8, 8);
		if (got != token + 1)
			FAIL("%s: child's answer %#llx not visible, want %#llx", names[i],
			     (unsigned long long)got, (unsigned long long)token + 1);
	}
	if (wait(&status) < 0 || status)
		FAIL("child: exit status %#x", status);
}

int main(int argc, char **argv)
{
	const char *damage = argc > 1 ? argv[1] : NULL;
	pid_t kid;

	closefrom(3); /* drop descriptors leaked by whatever started the test */
	build();
	if (pipe(cmd) || pipe(reply))
		die("pipe");
	kid = fork();
	if (kid < 0)
		die("fork");
	if (kid == 0)
		child(damage);
	printf("READY %d\n", getpid());
	fflush(stdout);
	for (int i = 0; i < 6000 && access("check", F_OK); i++)
		usleep(10000);
	check(damage);
	if (!failed)
		printf("PASS\n");
	fflush(stdout);
	return failed;
}
