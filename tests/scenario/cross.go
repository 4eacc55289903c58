package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"

	"github.com/ksu-project/ksu/qemu"
	"github.com/ksu-project/ksu/tests/workloads"
)

// GuestXfail returns why a checkpoint and restore is expected to fail
// workload name on release rel, from the desc file installed next to it
// in the guest, or "" when it is expected to pass.
func GuestXfail(ctx context.Context, g *qemu.Guest, name, rel, workDir string) (string, error) {
	data, err := g.Output(ctx, "cat", path.Join(WorkloadDir, name+".desc"))
	if err != nil {
		return "", fmt.Errorf("read desc of workload %s: %w", name, err)
	}
	local := filepath.Join(workDir, name+".desc")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		return "", err
	}
	d, err := workloads.ReadDesc(local)
	if err != nil {
		return "", err
	}
	return d.XfailOn(rel), nil
}

// VDSOCallSource is a C program that finds the vDSO functions through
// AT_SYSINFO_EHDR at start, as glibc and the Go runtime do, and keeps
// their addresses. It prints READY and a line "vdso NAME..." with the
// functions found. On SIGUSR2 it calls each saved address once, checks
// the results against system calls, and prints PASS or FAIL: reason.
// After a switch to another release those addresses hold trampolines,
// so every entry of the copy, and getrandom's system call fallback
// when the new vDSO lacks it, runs once.
const VDSOCallSource = `#define _GNU_SOURCE
#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t check;
static void on_usr2(int sig) { (void)sig; check = 1; }

static void *lookup(const char *name)
{
	unsigned long base = getauxval(AT_SYSINFO_EHDR);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)base;
	Elf64_Phdr *ph = (Elf64_Phdr *)(base + eh->e_phoff);
	Elf64_Shdr *sh = (Elf64_Shdr *)(base + eh->e_shoff);
	unsigned long bias = base;
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD) {
			bias = base - ph[i].p_vaddr;
			break;
		}
	for (int i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		Elf64_Sym *sym = (Elf64_Sym *)(base + sh[i].sh_offset);
		const char *str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		for (unsigned long j = 0; j < sh[i].sh_size / sizeof(*sym); j++)
			if (sym[j].st_shndx != SHN_UNDEF && strcmp(str + sym[j].st_name, name) == 0)
				return (void *)(bias + sym[j].st_value);
	}
	return NULL;
}

int main(void)
{
	int (*vclock_gettime)(clockid_t, struct timespec *) = lookup("__vdso_clock_gettime");
	int (*vgettimeofday)(struct timeval *, void *) = lookup("__vdso_gettimeofday");
	time_t (*vtime)(time_t *) = lookup("__vdso_time");
	long (*vgetcpu)(unsigned *, unsigned *, void *) = lookup("__vdso_getcpu");
	long (*vgetrandom)(void *, size_t, unsigned, void *, size_t) = lookup("__vdso_getrandom");
	struct timespec start, ts, real;
	struct timeval tv;
	unsigned char buf[32] = {0};
	unsigned cpu = ~0u, node;
	const char *fail = NULL;

	if (!getauxval(AT_SYSINFO_EHDR) || !vclock_gettime || !vgettimeofday || !vtime || !vgetcpu) {
		printf("FAIL: setup: a vDSO function is missing\n");
		return 1;
	}
	vclock_gettime(CLOCK_MONOTONIC, &start);
	signal(SIGUSR2, on_usr2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("vdso clock_gettime gettimeofday time getcpu%s\n", vgetrandom ? " getrandom" : "");
	printf("READY\n");
	while (!check)
		usleep(10000);

	syscall(SYS_clock_gettime, CLOCK_REALTIME, &real);
	if (vclock_gettime(CLOCK_MONOTONIC, &ts) != 0 || ts.tv_sec < start.tv_sec)
		fail = "clock_gettime: CLOCK_MONOTONIC went back";
	else if (vgettimeofday(&tv, NULL) != 0 || tv.tv_sec < real.tv_sec - 5 || tv.tv_sec > real.tv_sec + 5)
		fail = "gettimeofday: more than 5 s from the system call";
	else if (vtime(NULL) < real.tv_sec - 5 || vtime(NULL) > real.tv_sec + 5)
		fail = "time: more than 5 s from the system call";
	else if (vgetcpu(&cpu, &node, NULL) != 0 || cpu >= (unsigned)sysconf(_SC_NPROCESSORS_CONF))
		fail = "getcpu: no valid CPU";
	else if (vgetrandom && vgetrandom(buf, sizeof(buf), 0, NULL, 0) != sizeof(buf))
		fail = "getrandom: short read";
	else if (vgetrandom && memcmp(buf, (unsigned char[32]){0}, sizeof(buf)) == 0)
		fail = "getrandom: all bytes zero";
	if (fail) {
		printf("FAIL: %s\n", fail);
		return 1;
	}
	printf("PASS\n");
	return 0;
}
`

// InstallProgram compiles the C program source statically on the host
// and copies it to the guest as path.
func InstallProgram(ctx context.Context, g *qemu.Guest, workDir, path, source string) error {
	src := filepath.Join(workDir, filepath.Base(path)+".c")
	bin := filepath.Join(workDir, filepath.Base(path))
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		return err
	}
	cc := exec.CommandContext(ctx, "gcc", "-static", "-O2", "-Wall", "-o", bin, src)
	if out, err := cc.CombinedOutput(); err != nil {
		return fmt.Errorf("compile %s: %w: %s", src, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	res, err := g.Exec(ctx, qemu.Cmd{Argv: []string{"sh", "-c", `cat > "$0" && chmod 755 "$0"`, path}, Stdin: data})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("copy %s to the guest as %s: %s", bin, path, res.Stderr)
	}
	return nil
}
