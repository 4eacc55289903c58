/* Tracee for the engine benchmark: 1 GiB of anonymous memory, every
 * other page holding data and the rest written with zeros. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	size_t size = 1UL << 30;

	closefrom(3);
	unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < size; i += 4096)
		memset(m + i, (i / 4096) % 2 ? 0 : (int)(i / 4096 % 251) + 1, 4096);
	printf("READY %d\n", getpid());
	fflush(stdout);
	pause();
	return 0;
}
