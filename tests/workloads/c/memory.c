/*
 * memory - the kinds of mappings a process has, each with known content.
 *
 * Private anonymous memory, MAP_SHARED anonymous memory and a memfd that a
 * child shares, a private file mapping with modified pages, a mapping of
 * a file deleted since, a PROT_NONE guard page, MADV_DONTFORK and
 * MADV_DONTDUMP memory, a sparse 1 GiB region and the brk heap. The
 * shared mappings are checked both ways: a value the parent writes must
 * be visible to the child and the child's answer to the parent, which
 * fails if a restore turned them into two private copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wl.h"

#define PAGE 4096UL
#define ANON_SIZE (4UL << 20)
#define SHARED_SIZE (16 * PAGE)
#define SPARSE_SIZE (1UL << 30)
#define SPARSE_STEP (64UL << 20)
#define SPARSE_MAX_RESIDENT 64
#define BRK_SIZE (256UL * 1024)

/* The last 16 bytes of each shared region carry the parent's token and the child's reply. */
#define SLOT_OFF (SHARED_SIZE - 16)

static unsigned char *anon, *shared_anon, *memfd_map, *priv_file, *deleted_map;
static unsigned char *guard, *dontfork, *sparse, *brk_start, *brk_end;
static int memfd;
static int cmd_pipe[2], reply_pipe[2];
static pid_t child_pid;
static sigjmp_buf probe_env;

static void *map(size_t len, int prot, int flags, int fd)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		wl_die("mmap");
	return p;
}

static int make_file(const char *name, size_t len, unsigned seed)
{
	unsigned char buf[PAGE];
	size_t off;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		wl_die(name);
	for (off = 0; off < len; off += PAGE) {
		wl_fill(buf, PAGE, seed, off);
		if (wl_write_all(fd, buf, PAGE))
			wl_die(name);
	}
	return fd;
}

/* reply_token runs in the child. It reads the token from both shared regions and writes token+1 back. */
static void reply_token(void)
{
	uint64_t a, m, reply;
	char msg[120] = "";

	memcpy(&a, shared_anon + SLOT_OFF, 8);
	memcpy(&m, memfd_map + SLOT_OFF, 8);
	if (wl_mismatch(shared_anon, SLOT_OFF, 2, 0) >= 0)
		snprintf(msg, sizeof(msg), "child: shared anonymous content changed");
	else if (wl_mismatch(memfd_map, SLOT_OFF, 3, 0) >= 0)
		snprintf(msg, sizeof(msg), "child: memfd content changed");
	else if (a != m)
		snprintf(msg, sizeof(msg), "child: tokens differ: %#llx and %#llx",
			 (unsigned long long)a, (unsigned long long)m);
	reply = a + 1;
	memcpy(shared_anon + SLOT_OFF + 8, &reply, 8);
	reply = m + 1;
	memcpy(memfd_map + SLOT_OFF + 8, &reply, 8);
	wl_write_all(reply_pipe[1], msg, sizeof(msg));
}

static void start_child(void)
{
	char c;

	if (pipe(cmd_pipe) || pipe(reply_pipe))
		wl_die("pipe");
	child_pid = fork();
	if (child_pid < 0)
		wl_die("fork");
	if (child_pid)
		return;
	wl_set_pdeathsig();
	while (read(cmd_pipe[0], &c, 1) != 1)
		if (errno != EINTR)
			_exit(3);
	reply_token();
	_exit(0);
}

static void build_shared(void)
{
	shared_anon = map(SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	wl_fill(shared_anon, SLOT_OFF, 2, 0);
	memfd = memfd_create("ksu-wl-memfd", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, SHARED_SIZE))
		wl_die("memfd_create");
	memfd_map = map(SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd);
	wl_fill(memfd_map, SLOT_OFF, 3, 0);
}

static void build_files(void)
{
	int fd = make_file("private.dat", 3 * PAGE, 4);

	priv_file = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	wl_fill(priv_file + PAGE, PAGE, 5, 0);
	close(fd);
	fd = make_file("deleted.dat", 2 * PAGE, 6);
	deleted_map = map(2 * PAGE, PROT_READ, MAP_SHARED, fd);
	close(fd);
	if (unlink("deleted.dat"))
		wl_die("unlink deleted.dat");
}

static void build_special(void)
{
	size_t i;

	guard = map(3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(guard, 3 * PAGE, 7, 0);
	if (mprotect(guard + PAGE, PAGE, PROT_NONE))
		wl_die("mprotect PROT_NONE");
	dontfork = map(4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(dontfork, 4 * PAGE, 8, 0);
	if (madvise(dontfork, 4 * PAGE, MADV_DONTFORK) ||
	    madvise(dontfork, 4 * PAGE, MADV_DONTDUMP))
		wl_die("madvise DONTFORK/DONTDUMP");
	sparse = map(SPARSE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	if (madvise(sparse, SPARSE_SIZE, MADV_NOHUGEPAGE))
		wl_die("madvise NOHUGEPAGE");
	for (i = 0; i < SPARSE_SIZE / SPARSE_STEP; i++)
		wl_fill(sparse + i * SPARSE_STEP + i * PAGE, 1, 10, i);
}

static void build_brk(void)
{
	brk_start = sbrk(0);
	if (sbrk(BRK_SIZE) == (void *)-1)
		wl_die("sbrk");
	brk_end = sbrk(0);
	wl_fill(brk_start, BRK_SIZE, 9, 0);
}

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

/* faults returns whether reading p raises SIGSEGV. */
static int faults(const volatile unsigned char *p)
{
	struct sigaction sa = { .sa_handler = on_segv, .sa_flags = SA_NODEFER }, old;
	int faulted = 0;

	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(probe_env, 1))
		faulted = 1;
	else
		(void)*p;
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

/* vma_field copies what follows key in the smaps entry that starts at addr into out. */
static int vma_field(const void *addr, const char *key, char *out, size_t len)
{
	char line[512], start[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	int in_vma = 0, found = 0;

	if (!f)
		return 0;
	snprintf(start, sizeof(start), "%lx-", (unsigned long)addr);
	while (!found && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' '))
			in_vma = !strncmp(line, start, strlen(start));
		if (!in_vma)
			continue;
		if (!strcmp(key, "") || !strncmp(line, key, strlen(key))) {
			snprintf(out, len, "%s", line + strlen(key));
			found = 1;
		}
	}
	fclose(f);
	return found;
}

static void want_vma(const void *addr, const char *key, const char *want, const char *what)
{
	char got[512];

	if (!vma_field(addr, key, got, sizeof(got)))
		wl_fail("%s: no mapping starts at %p", what, addr);
	else if (!strstr(got, want))
		wl_fail("%s: %s%s lacks %s", what, key, strtok(got, "\n"), want);
}

static void want_pattern(const void *p, size_t n, unsigned seed, size_t off, const char *what)
{
	ssize_t bad = wl_mismatch(p, n, seed, off);

	if (bad >= 0)
		wl_fail("%s: byte %zd of %zu changed", what, bad, n);
}

static void check_brk(void)
{
	if (sbrk(0) != brk_end)
		wl_fail("brk = %p, want %p", sbrk(0), (void *)brk_end);
	want_pattern(brk_start, BRK_SIZE, 9, 0, "brk heap");
}

static void check_shared(void)
{
	uint64_t token = 0x6b73752d746f6bULL ^ (uint64_t)wl_now_ns(CLOCK_MONOTONIC), a, m;
	char msg[120] = "", c = 'c';
	int status;

	want_pattern(shared_anon, SLOT_OFF, 2, 0, "shared anonymous");
	want_pattern(memfd_map, SLOT_OFF, 3, 0, "memfd mapping");
	memcpy(shared_anon + SLOT_OFF, &token, 8);
	memcpy(memfd_map + SLOT_OFF, &token, 8);
	if (write(cmd_pipe[1], &c, 1) != 1 ||
	    wl_read_full(reply_pipe[0], msg, sizeof(msg), WL_TIMEOUT_MS) != sizeof(msg)) {
		wl_fail("child %d did not reply", child_pid);
		return;
	}
	if (msg[0])
		wl_fail("%s", msg);
	memcpy(&a, shared_anon + SLOT_OFF + 8, 8);
	memcpy(&m, memfd_map + SLOT_OFF + 8, 8);
	if (a != token + 1)
		wl_fail("shared anonymous: child's reply not visible to the parent");
	if (m != token + 1)
		wl_fail("memfd mapping: child's reply not visible to the parent");
	if (waitpid(child_pid, &status, 0) != child_pid || status)
		wl_fail("child %d exit status %#x", child_pid, status);
}

static void check_memfd_fd(void)
{
	unsigned char page[PAGE];

	if (pread(memfd, page, PAGE, PAGE) != (ssize_t)PAGE)
		wl_fail("pread memfd: %s", strerror(errno));
	else
		want_pattern(page, PAGE, 3, PAGE, "memfd read through its fd");
	if (lseek(memfd, 0, SEEK_END) != (off_t)SHARED_SIZE)
		wl_fail("memfd size changed");
}

static void check_files(void)
{
	unsigned char page[PAGE];
	int fd;

	want_pattern(priv_file, PAGE, 4, 0, "private file page 0");
	want_pattern(priv_file + PAGE, PAGE, 5, 0, "private file modified page 1");
	want_pattern(priv_file + 2 * PAGE, PAGE, 4, 2 * PAGE, "private file page 2");
	fd = open("private.dat", O_RDONLY);
	if (fd < 0 || pread(fd, page, PAGE, PAGE) != (ssize_t)PAGE)
		wl_fail("read private.dat: %s", strerror(errno));
	else
		want_pattern(page, PAGE, 4, PAGE, "private.dat on disk (private write leaked)");
	if (fd >= 0)
		close(fd);
	want_pattern(deleted_map, 2 * PAGE, 6, 0, "mapping of deleted file");
	want_vma(deleted_map, "", "(deleted)", "mapping of deleted file");
}

static void check_special(void)
{
	int status;
	pid_t pid;

	want_pattern(guard, PAGE, 7, 0, "page before the guard");
	want_pattern(guard + 2 * PAGE, PAGE, 7, 2 * PAGE, "page after the guard");
	if (!faults(guard + PAGE))
		wl_fail("guard page is readable");
	want_vma(guard + PAGE, "", " ---p ", "guard page");
	want_pattern(dontfork, 4 * PAGE, 8, 0, "MADV_DONTFORK region");
	want_vma(dontfork, "VmFlags:", " dc", "MADV_DONTFORK region");
	want_vma(dontfork, "VmFlags:", " dd", "MADV_DONTDUMP region");
	pid = fork();
	if (pid == 0)
		_exit(faults(dontfork) ? 0 : 1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status)
		wl_fail("MADV_DONTFORK region present in a new child");
}

static void check_sparse(void)
{
	static unsigned char vec[SPARSE_SIZE / PAGE];
	size_t i, resident = 0;

	if (mincore(sparse, SPARSE_SIZE, vec))
		wl_fail("mincore sparse region: %s", strerror(errno));
	for (i = 0; i < sizeof(vec); i++)
		resident += vec[i] & 1;
	if (resident > SPARSE_MAX_RESIDENT)
		wl_fail("sparse region: %zu pages resident, want at most %d", resident,
			SPARSE_MAX_RESIDENT);
	want_vma(sparse, "VmFlags:", " nh", "MADV_NOHUGEPAGE region");
	for (i = 0; i < SPARSE_SIZE / SPARSE_STEP; i++) {
		want_pattern(sparse + i * SPARSE_STEP + i * PAGE, 1, 10, i, "sparse byte");
		if (sparse[i * SPARSE_STEP + SPARSE_STEP / 2])
			wl_fail("sparse region: byte at %#lx is not zero",
				i * SPARSE_STEP + SPARSE_STEP / 2);
	}
}

int main(void)
{
	wl_init();
	anon = map(ANON_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	wl_fill(anon, ANON_SIZE, 1, 0);
	build_shared();
	start_child();
	build_files();
	build_special();
	build_brk();
	wl_ready();

	wl_wait_check();
	check_brk();
	want_pattern(anon, ANON_SIZE, 1, 0, "private anonymous");
	check_shared();
	check_memfd_fd();
	check_files();
	check_special();
	check_sparse();
	return wl_finish();
}
