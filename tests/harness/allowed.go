package harness

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Allowance is one difference between a capture before the dump and one
// after the restore that Compare accepts.
type Allowance struct {
	What   string
	Reason string
}

// Allowed is the complete list of accepted differences. Compare applies
// each one in normalize, except the two that need both captures (new
// threads and all-blocked masks, see dropNewThreads and
// keepTransientMasks), and reports any other difference.
var Allowed = []Allowance{
	{"stat start_time, CPU times, boot id, kernel release",
		"not captured: the restored process is a new kernel task, and a kernel switch changes boot id and release"},
	{"status counters (VmRSS, context switches, SigQ) and the run state",
		"not captured: they change by the moment or count per user, but a zombie must stay a zombie"},
	{"PPid of the tree's root",
		"the restore makes the root a child of ksu restore, which exits, so the root is reparented to init"},
	{"inode numbers in pipe:[N], socket:[N] and anon_inode:[N] fd targets",
		"the restore creates new kernel objects; the numbers are replaced by their order of first appearance, so which fds share an object is still compared"},
	{"device and inode of mappings of deleted files, memfds and SysV or shared anonymous memory",
		"the restore recreates the backing object; the path and the addresses are still compared"},
	{"how adjacent mappings are split",
		"the kernel merges neighbouring VMAs only when their anon_vma and flags allow it, so a restore may yield one mapping where there were two; adjacent mappings with the same permissions, device, inode and path and contiguous offsets are merged before comparing"},
	{"timer signals in the pending sets (SigPnd, ShdPnd): SIGALRM, SIGVTALRM, SIGPROF and the real-time signals",
		"an armed timer can fire between the capture and the freeze, or between the resume and the capture; the signals and timers workloads check their pending signals themselves"},
	{"threads that exist only after the restore, and the thread count",
		"a program may start threads once it runs again (the Go runtime does); every thread of the capture before the dump must still be there"},
	{"where an anonymous read-write mapping ends and the PROT_NONE reservation after it begins",
		"allocators (glibc arenas, the Go heap) grow into reserved address space with mprotect while the program runs; the joint extent is still compared"},
	{"the blocked set of a thread captured with every signal blocked",
		"glibc blocks all signals while it creates a thread (a SIGEV_THREAD timer starts one at each expiry), so such a capture shows a moment, not the thread's mask"},
	{"the pending signals of a zombie",
		"a zombie never takes a signal, so its pending set is visible only in /proc; a signal sent to it as it died may or may not be there"},
	{"[vvar] and [vvar_vclock] mappings",
		"kernel data pages whose number and layout depend on the kernel (6.12 split out [vvar_vclock]); [vdso] is still compared"},
}

var (
	inodeTargetRE = regexp.MustCompile(`^(pipe|socket|anon_inode):\[(\d+)\]$`)
	vvarPaths     = map[string]bool{"[vvar]": true, "[vvar_vclock]": true}
)

// normalize returns a copy of t with the Allowed differences removed.
func normalize(t Tree) Tree {
	out := Tree{Root: t.Root}
	renumber := inodeRenumberer()
	for _, p := range t.Processes {
		q := p
		q.Status = copyMap(p.Status)
		if p.PID == t.Root {
			delete(q.Status, "PPid")
		}
		zombie := q.Status["State"] == "zombie"
		for _, key := range []string{"SigPnd", "ShdPnd"} {
			if v, ok := q.Status[key]; ok {
				q.Status[key] = maskPending(v, zombie)
			}
		}
		q.Threads = append([]Thread(nil), p.Threads...)
		for i := range q.Threads {
			q.Threads[i].SigPnd = maskPending(q.Threads[i].SigPnd, zombie)
		}
		q.Maps = normalizeMaps(p.Maps)
		q.FDs = map[int]string{}
		for _, fd := range sortedKeys(p.FDs) {
			q.FDs[fd] = renumber(p.FDs[fd])
		}
		out.Processes = append(out.Processes, q)
	}
	return out
}

// inodeRenumberer returns a function that replaces the inode number of
// a pipe, socket or anon_inode target by "#k", its order of first
// appearance among the targets it was given.
func inodeRenumberer() func(string) string {
	seen := map[string]int{}
	return func(target string) string {
		m := inodeTargetRE.FindStringSubmatch(target)
		if m == nil {
			return target
		}
		key := m[1] + ":" + m[2]
		k, ok := seen[key]
		if !ok {
			k = len(seen) + 1
			seen[key] = k
		}
		return fmt.Sprintf("%s:[#%d]", m[1], k)
	}
}

// normalizeMaps drops the vvar mappings and blanks the device and inode
// of mappings whose backing object the restore recreates. A maps line
// reads "START-END PERMS OFFSET DEV INODE [PATH]", with runs of spaces
// already reduced to one.
func normalizeMaps(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.SplitN(l, " ", 6)
		if len(f) < 5 {
			out = append(out, l)
			continue
		}
		path := ""
		if len(f) == 6 {
			path = f[5]
		}
		if vvarPaths[path] {
			continue
		}
		if recreatedBacking(path) {
			f[3], f[4] = "-", "-"
		}
		out = append(out, strings.Join(f, " "))
	}
	return mergeReservations(mergeAdjacent(out))
}

// mergeReservations joins an anonymous read-write mapping with the
// anonymous PROT_NONE mapping right after it, which is how an allocator
// (glibc's arenas, the Go heap) reserves address space and grows into it
// with mprotect while the program runs. The joined line keeps the extent
// and drops the boundary, which moves between two captures.
func mergeReservations(lines []string) []string {
	var out []string
	for _, l := range lines {
		if n := len(out); n > 0 {
			if merged, ok := joinReservation(out[n-1], l); ok {
				out[n-1] = merged
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

func joinReservation(a, b string) (string, bool) {
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) != 5 || len(fb) != 5 || fa[4] != "0" || fb[4] != "0" || fb[1] != "---p" {
		return "", false
	}
	if fa[1] != "rw-p" && fa[1] != "rw-p+---p" {
		return "", false
	}
	start, endA, okA := strings.Cut(fa[0], "-")
	startB, end, okB := strings.Cut(fb[0], "-")
	if !okA || !okB || endA != startB {
		return "", false
	}
	return start + "-" + end + " rw-p+---p - " + fa[3] + " 0", true
}

// mergeAdjacent merges neighbouring maps lines that continue one another:
// the same permissions, device, inode and path, the second starting where
// the first ends, at the matching file offset for a file mapping.
func mergeAdjacent(lines []string) []string {
	var out []string
	for _, l := range lines {
		if n := len(out); n > 0 {
			if merged, ok := mergeMaps(out[n-1], l); ok {
				out[n-1] = merged
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

func mergeMaps(a, b string) (string, bool) {
	fa, fb := strings.SplitN(a, " ", 6), strings.SplitN(b, " ", 6)
	if len(fa) < 5 || len(fa) != len(fb) {
		return "", false
	}
	startA, endA, okA := strings.Cut(fa[0], "-")
	startB, endB, okB := strings.Cut(fb[0], "-")
	if !okA || !okB || endA != startB {
		return "", false
	}
	for i := 1; i < len(fa); i++ {
		if i != 2 && fa[i] != fb[i] {
			return "", false
		}
	}
	if fa[4] != "0" && fa[4] != "-" {
		offA, errA := strconv.ParseUint(fa[2], 16, 64)
		offB, errB := strconv.ParseUint(fb[2], 16, 64)
		lo, errLo := strconv.ParseUint(startA, 16, 64)
		hi, errHi := strconv.ParseUint(endA, 16, 64)
		if errA != nil || errB != nil || errLo != nil || errHi != nil || offA+(hi-lo) != offB {
			return "", false
		}
	}
	fa[0] = startA + "-" + endB
	return strings.Join(fa, " "), true
}

// recreatedBacking reports whether a mapping's path names an object
// that the restore recreates rather than reopens.
func recreatedBacking(path string) bool {
	return strings.HasSuffix(path, " (deleted)") ||
		strings.HasPrefix(path, "/memfd:") ||
		strings.HasPrefix(path, "/SYSV")
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func sortedKeys(m map[int]string) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

// maskPending returns a pending set as it is compared: without the timer
// signals, and empty for a zombie.
func maskPending(set string, zombie bool) string {
	if zombie {
		return "-"
	}
	return maskTimerSignals(set)
}

// timerSignals has the bits of SIGALRM (14), SIGVTALRM (26), SIGPROF (27)
// and the real-time signals (34 to 64) in a /proc/PID/status signal set,
// where signal n is bit n-1.
const timerSignals = 1<<13 | 1<<25 | 1<<26 | 0x7fffffff<<33

// maskTimerSignals clears the timer signals from a hexadecimal signal set
// as /proc/PID/status prints it; a value it cannot parse is kept as is.
func maskTimerSignals(set string) string {
	v, err := strconv.ParseUint(set, 16, 64)
	if err != nil {
		return set
	}
	return fmt.Sprintf("%0*x", len(set), v&^timerSignals)
}
