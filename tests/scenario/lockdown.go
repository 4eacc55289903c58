package scenario

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ksu-project/ksu/pkg/kexec"
	"github.com/ksu-project/ksu/qemu"
)

// LockdownCmdline puts a guest's kernel in lockdown integrity mode, so
// that kexec_file_load accepts only kernels it can verify.
const LockdownCmdline = "lockdown=integrity"

// Offsets in a PE32+ image, from the PE/COFF specification: the DOS
// header's e_lfanew, the size of the "PE\0\0" signature and the COFF
// header, and the place of the security (certificate table) entry in the
// optional header's data directory.
const (
	offPEHeader          = 0x3c
	peSignatureLen       = 4
	coffHeaderLen        = 20
	offPE32PlusDirectory = 112
	offPE32Directory     = 96
	dataDirEntryLen      = 8
	pe32PlusMagic        = 0x20b
)

// StripSignature returns a copy of the signed kernel image without its
// Authenticode signature: the certificate table entry of the data
// directory zeroed and the table, which signing tools append at the end
// of the file, cut off. The kernel code itself is unchanged.
func StripSignature(image []byte) ([]byte, error) {
	sig, err := kexec.ParseSignature(bytes.NewReader(image), int64(len(image)))
	if err != nil {
		return nil, fmt.Errorf("strip signature: %w", err)
	}
	if !sig.Signed() {
		return nil, errors.New("strip signature: the image carries no certificate table")
	}
	if sig.Offset+sig.Size != int64(len(image)) {
		return nil, fmt.Errorf("strip signature: certificate table [%d, +%d) does not end the %d-byte file",
			sig.Offset, sig.Size, len(image))
	}
	entry, err := securityEntryOffset(image)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(image[:sig.Offset])
	clear(out[entry : entry+dataDirEntryLen])
	return out, nil
}

// securityEntryOffset returns the file offset of the security entry of
// the PE optional header's data directory.
func securityEntryOffset(image []byte) (int, error) {
	if len(image) < offPEHeader+4 {
		return 0, errors.New("strip signature: no DOS header")
	}
	opt := int(binary.LittleEndian.Uint32(image[offPEHeader:])) + peSignatureLen + coffHeaderLen
	if opt+offPE32PlusDirectory+5*dataDirEntryLen > len(image) {
		return 0, fmt.Errorf("strip signature: optional header at offset %d is past the end of the %d-byte image", opt, len(image))
	}
	dir := offPE32Directory
	if binary.LittleEndian.Uint16(image[opt:]) == pe32PlusMagic {
		dir = offPE32PlusDirectory
	}
	return opt + dir + 4*dataDirEntryLen, nil
}

// InstallUnsignedKernel copies the kernel image src of the host to path
// in the guest without its signature.
func InstallUnsignedKernel(ctx context.Context, g *qemu.Guest, src, path string) error {
	image, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	unsigned, err := StripSignature(image)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	res, err := g.Exec(ctx, qemu.Cmd{Argv: []string{"sh", "-c", `cat > "$0"`, path}, Stdin: unsigned})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("copy the unsigned kernel to %s: %s", path, res.Stderr)
	}
	return nil
}

// StateSampler records the states of a guest process while a test runs
// something else, so that the test can tell whether the process was
// ever stopped.
type StateSampler struct {
	pid  int
	log  string
	stop string
}

// maxStateSamples bounds the sampler loop: at one sample per 10 ms or
// more, that is five minutes or more.
const maxStateSamples = 30000

// StartStateSampler starts a guest bash loop that reads the state of
// process pid from /proc/PID/stat about every 10 ms until Stop. The loop
// uses only bash builtins, so a sample costs no fork and the interval
// stays short even under software emulation.
func StartStateSampler(ctx context.Context, g *qemu.Guest, pid int) (*StateSampler, error) {
	s := &StateSampler{
		pid:  pid,
		log:  fmt.Sprintf("/var/tmp/ksu-states-%d.log", pid),
		stop: fmt.Sprintf("/var/tmp/ksu-states-%d.stop", pid),
	}
	// read -t on a FIFO that nobody writes sleeps without a fork. The
	// state is the field after the command name in brackets, which may
	// itself contain ") ", so the last ") " ends it.
	script := fmt.Sprintf(`fifo=%[2]s.fifo; rm -f %[2]s "$fifo"; mkfifo "$fifo"; exec 9<>"$fifo"; rm -f "$fifo"
i=0
while [[ ! -e %[2]s ]] && ((i < %[3]d)); do
	if read -r stat 2>/dev/null </proc/%[1]d/stat; then rest=${stat##*) }; echo "${rest%%%% *}"; else echo gone; fi
	read -r -t 0.01 -u 9 _
	i=$((i + 1))
done
echo done`, pid, s.stop, maxStateSamples)
	if _, err := g.SpawnCmd(ctx, qemu.Cmd{Argv: []string{"bash", "-c", script}, Log: s.log}); err != nil {
		return nil, fmt.Errorf("start the state sampler of process %d: %w", pid, err)
	}
	return s, nil
}

// Stop ends the sampler and returns how often it saw each state.
func (s *StateSampler) Stop(ctx context.Context, g *qemu.Guest) (map[string]int, error) {
	if _, err := g.Output(ctx, "touch", s.stop); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := g.Output(ctx, "cat", s.log)
		if err != nil {
			return nil, err
		}
		if lines := strings.Fields(string(out)); len(lines) > 0 && lines[len(lines)-1] == "done" {
			counts := map[string]int{}
			for _, state := range lines[:len(lines)-1] {
				counts[state]++
			}
			return counts, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil, fmt.Errorf("state sampler of process %d did not end within 30 s; see %s", s.pid, s.log)
}

// FormatStates formats state counts, e.g. "R 3, S 120".
func FormatStates(counts map[string]int) string {
	var parts []string
	for _, state := range []string{"R", "S", "D", "T", "t", "Z", "gone"} {
		if n := counts[state]; n > 0 {
			parts = append(parts, state+" "+strconv.Itoa(n))
		}
	}
	return strings.Join(parts, ", ")
}
