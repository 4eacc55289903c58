/* Tracee for the engine tests: fills heap, anonymous and private file
 * memory with known patterns, optionally starts threads, then counts.
 * It prints READY, and PASS or FAIL when the count reaches its goal.
 * Usage: counter FILE NTHREADS GOAL */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#define ANON_SIZE (4 << 20)
static volatile unsigned long counters[16];
static volatile int stop;

static void *spin(void *arg)
{
	long i = (long)arg;
	while (!stop) {
		counters[i]++;
		usleep(1000);
	}
	return NULL;
}

static int check(unsigned char *heap, unsigned char *anon, unsigned char *file)
{
	for (int i = 0; i < 65536; i++)
		if (heap[i] != (unsigned char)(i * 7))
			return printf("FAIL: heap byte %d\n", i), 1;
	for (int i = 0; i < ANON_SIZE; i += 4096)
		if (anon[i] != (unsigned char)(i >> 12) + 1 && (i >> 12) % 2 == 0)
			return printf("FAIL: anon page %d\n", i >> 12), 1;
	if (memcmp(file, "patched", 7) != 0)
		return printf("FAIL: file page\n"), 1;
	return 0;
}

int main(int argc, char **argv)
{
	closefrom(3); /* drop descriptors leaked by whatever started the test */
	int nthreads = atoi(argv[2]);
	unsigned long goal = strtoul(argv[3], NULL, 10);
	unsigned char *heap = malloc(65536);
	for (int i = 0; i < 65536; i++)
		heap[i] = (unsigned char)(i * 7);
	unsigned char *anon = mmap(NULL, ANON_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < ANON_SIZE; i += 8192) /* every other page stays untouched */
		anon[i] = (unsigned char)(i >> 12) + 1;
	int fd = open(argv[1], O_RDONLY);
	unsigned char *file = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	memcpy(file, "patched", 7);
	pthread_t th[16];
	for (long i = 1; i <= nthreads && i < 16; i++)
		pthread_create(&th[i], NULL, spin, (void *)i);
	printf("READY %d\n", getpid());
	fflush(stdout);
	while (counters[0] < goal) {
		counters[0]++;
		usleep(1000);
	}
	stop = 1;
	for (long i = 1; i <= nthreads && i < 16; i++)
		pthread_join(th[i], NULL);
	for (long i = 1; i <= nthreads && i < 16; i++)
		if (counters[i] == 0)
			return printf("FAIL: thread %ld never ran\n", i), 1;
	if (check(heap, anon, file))
		return 1;
	printf("PASS %lu\n", counters[0]);
	return 0;
}
