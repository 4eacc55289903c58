package restore

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

// PIDs of the test snapshots: below PID_MAX_LIMIT, and above the pid_max
// of most machines, so that the ids are free if a restore gets far.
const (
	testPID  = 4100001
	testTID  = 4100002
	childPID = 4100003
)

// records are the decoded records of a snapshot, as the restore holds
// them when it validates.
type records struct {
	procs []*snapshot.Process
	files map[uint64]*snapshot.File
	pipes map[uint64]*snapshot.Pipe
	shms  map[uint64]*snapshot.SharedMemory
	pages []*snapshot.Pages
}

// validRecords returns a small snapshot that validate accepts: a process
// with a child, two mappings, a memfd mapping, a pipe and two
// descriptors, with pages for the anonymous mapping and the memfd.
func validRecords() *records {
	vmas := []snapshot.VMA{
		{Start: 0x400000, End: 0x402000, Prot: unix.PROT_READ | unix.PROT_WRITE, Kind: snapshot.VMAAnon},
		{Start: 0x402000, End: 0x403000, Prot: unix.PROT_READ, Kind: snapshot.VMAAnon},
		{Start: 0x7f0000000000, End: 0x7f0000002000, Prot: unix.PROT_READ, Flags: snapshot.VMAShared,
			Kind: snapshot.VMAShmem, ShmID: 9},
	}
	parent := &snapshot.Process{PID: testPID, PPID: 1, PGID: testPID, SID: testPID,
		Identity: snapshot.Identity{Comm: "hostile"},
		MM:       &snapshot.MM{VMAs: vmas},
		Threads:  []snapshot.Thread{{TID: testPID}, {TID: testTID}},
		FDs:      []snapshot.FD{{Num: 0, File: 1}, {Num: 1, File: 2}},
	}
	child := &snapshot.Process{PID: childPID, PPID: testPID, PGID: testPID, SID: testPID,
		MM:      &snapshot.MM{VMAs: vmas[:1]},
		Threads: []snapshot.Thread{{TID: childPID}},
	}
	return &records{
		procs: []*snapshot.Process{parent, child},
		files: map[uint64]*snapshot.File{
			1: {ID: 1, Kind: snapshot.FileCharDevice, Flags: unix.O_RDWR, Ref: snapshot.FileRef{Path: "/dev/null"}},
			2: {ID: 2, Kind: snapshot.FilePipe, Flags: unix.O_WRONLY, PipeID: 7},
		},
		pipes: map[uint64]*snapshot.Pipe{7: {ID: 7, Capacity: 4096, Data: []byte("queued")}},
		shms:  map[uint64]*snapshot.SharedMemory{9: {ID: 9, Kind: snapshot.ShmMemfd, Size: 0x2000, Name: "m"}},
		pages: []*snapshot.Pages{
			{PID: testPID, Ranges: []snapshot.PageRange{{Addr: 0x401000, Len: 0x2000}}},
			{ShmID: 9, Ranges: []snapshot.PageRange{{Addr: 0x1000, Len: 0x1000}}},
		},
	}
}

// write encodes recs as a snapshot stream with snapshot.Writer, which
// checks the format but not the meaning, so hostile values get through.
func (recs *records) write(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, snapshot.WriterOptions{Level: 1})
	if err != nil {
		t.Fatalf("NewWriter() = %v", err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	meta := &snapshot.Meta{KernelRelease: runningRelease(), Machine: unix.ByteSliceToString(uts.Machine[:]),
		PageSize: 4096, Producer: "validate_test"}
	check := func(what string, err error) {
		if err != nil {
			t.Fatalf("Writer.%s() = %v", what, err)
		}
	}
	check("WriteMeta", w.WriteMeta(meta))

	for _, id := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} {
		if s, ok := recs.shms[id]; ok {
			check("WriteSharedMemory", w.WriteSharedMemory(s))
		}
		if p, ok := recs.pipes[id]; ok {
			check("WritePipe", w.WritePipe(p))
		}
		if f, ok := recs.files[id]; ok {
			check("WriteFile", w.WriteFile(f))
		}
	}
	for _, p := range recs.procs {
		check("WriteProcess", w.WriteProcess(p))
	}

	for _, pg := range recs.pages {
		check("WritePages", w.WritePages(pg, bytes.NewReader(make([]byte, pg.Size()))))
	}
	check("Close", w.Close())
	return buf.Bytes()
}

// readRecords decodes a snapshot stream the way the restore does and
// returns its records, with the Pages record of every page section.
func readRecords(t *testing.T, stream []byte) *records {
	t.Helper()
	rd, err := snapshot.NewReader(bytes.NewReader(stream), snapshot.ReaderOptions{Concurrency: 1})
	if err != nil {
		t.Fatalf("NewReader() = %v", err)
	}
	defer rd.Close()
	recs := &records{files: map[uint64]*snapshot.File{}, pipes: map[uint64]*snapshot.Pipe{},
		shms: map[uint64]*snapshot.SharedMemory{}}
	for {
		sec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatalf("Reader.Next() = %v", err)
		}
		if err := recs.take(sec); err != nil {
			t.Fatalf("decode %v section %d: %v", sec.Type, sec.Index, err)
		}
	}
}

func (recs *records) take(sec *snapshot.Section) error {
	var err error
	switch sec.Type {
	case snapshot.SectionProcess:
		var p *snapshot.Process
		if p, err = sec.Process(); err == nil {
			recs.procs = append(recs.procs, p)
		}
	case snapshot.SectionFile:
		var f *snapshot.File
		if f, err = sec.File(); err == nil {
			recs.files[f.ID] = f
		}
	case snapshot.SectionPipe:
		var p *snapshot.Pipe
		if p, err = sec.Pipe(); err == nil {
			recs.pipes[p.ID] = p
		}
	case snapshot.SectionSharedMemory:
		var s *snapshot.SharedMemory
		if s, err = sec.SharedMemory(); err == nil {
			recs.shms[s.ID] = s
		}
	case snapshot.SectionPages:
		recs.pages = append(recs.pages, sec.Pages())
	}
	return err
}

// validateAll runs what the restore runs on these records: validate
// before any task is created, then validatePages on every page section.
func (recs *records) validateAll() error {
	if err := validate(recs.procs, recs.files, recs.pipes, recs.shms); err != nil {
		return err
	}
	for _, pg := range recs.pages {
		if err := validatePages(recs.procs, recs.shms, pg); err != nil {
			return err
		}
	}
	return nil
}

// Where a hostile case can be caught.
const (
	beforeTasks   = iota // validate, before the restore creates any task
	atPages              // validatePages, after the tasks exist
	writerRejects        // validate, but snapshot.Writer refuses to write it
)

// hostileCases are well-formed snapshots that the restore must reject:
// each edits validRecords, and want is the part of the error that names
// the object and the reason. A writerRejects case edits the decoded
// records instead, as if another program had written the snapshot.
var hostileCases = []struct {
	name  string
	edit  func(r *records)
	want  string
	where int
}{
	{"mapping of 2^60 bytes", func(r *records) {
		r.procs[0].MM.VMAs[2].End = r.procs[0].MM.VMAs[2].Start + 1<<60
	}, "process 4100001: mapping 2 [0x7f0000000000, 0x10007f0000000000) (shmem): 1152921504606846976 bytes ending beyond", beforeTasks},
	{"overlapping mappings", func(r *records) {
		r.procs[0].MM.VMAs[1].Start = 0x401000
	}, "process 4100001: mapping 1 [0x401000, 0x403000) (anon): overlaps the mapping before it", beforeTasks},
	{"mappings out of order", func(r *records) {
		v := r.procs[0].MM.VMAs
		v[0], v[2] = v[2], v[0]
	}, "mapping 1 [0x402000, 0x403000) (anon): overlaps the mapping before it", beforeTasks},
	{"reversed mapping", func(r *records) {
		r.procs[0].MM.VMAs[0].End = 0x3ff000
	}, "mapping 0 [0x400000, 0x3ff000) (anon): empty or reversed", beforeTasks},
	{"unaligned mapping", func(r *records) {
		r.procs[0].MM.VMAs[0].Start = 0x400010
	}, "mapping 0 [0x400010, 0x402000) (anon): not aligned to 4096-byte pages", beforeTasks},
	{"mapping of missing memfd", func(r *records) {
		r.procs[0].MM.VMAs[2].ShmID = 99
	}, "mapping 2 [0x7f0000000000, 0x7f0000002000) maps shared memory 99, which is not in the snapshot", beforeTasks},
	{"live process without memory map", func(r *records) {
		r.procs[1].MM = nil
	}, "process 4100003: no memory map for a live process", beforeTasks},
	{"negative fd", func(r *records) {
		r.procs[0].FDs[1].Num = -1
	}, "process 4100001: fd -1 is negative", beforeTasks},
	{"fd above the default nr_open", func(r *records) {
		r.procs[0].FDs[1].Num = 1 << 20
	}, "process 4100001: fd 1048576 is not below the descriptor limit 1048576", beforeTasks},
	{"fd above RLIMIT_NOFILE", func(r *records) {
		r.procs[0].Identity.Rlimits = []snapshot.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1 << 21, Max: 1 << 22}}
		r.procs[0].FDs[1].Num = 1 << 22
	}, "process 4100001: fd 4194304 is not below the descriptor limit 4194304", beforeTasks},
	{"fd at INT_MAX", func(r *records) {
		r.procs[0].Identity.Rlimits = []snapshot.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1<<64 - 1, Max: 1<<64 - 1}}
		r.procs[0].FDs[1].Num = 1<<31 - 1
	}, "process 4100001: fd 2147483647 is not below the descriptor limit 2147483584", beforeTasks},
	{"fd listed twice", func(r *records) {
		r.procs[0].FDs[1].Num = 0
	}, "process 4100001: fd 0 is listed twice", beforeTasks},
	{"fd of missing file", func(r *records) {
		r.procs[0].FDs[1].File = 42
	}, "process 4100001: fd 1 refers to file 42, which is not in the snapshot", beforeTasks},
	{"pid 0", func(r *records) {
		r.procs[1].PID, r.procs[1].Threads[0].TID = 0, 0
	}, "process 0: id outside 1 to 4194304", writerRejects},
	{"negative pid", func(r *records) {
		r.procs[1].PID, r.procs[1].Threads[0].TID = -7, -7
	}, "process -7: id outside 1 to 4194304", writerRejects},
	{"pid above PID_MAX_LIMIT", func(r *records) {
		r.procs[1].PID, r.procs[1].Threads[0].TID = 1<<22+1, 1<<22+1
	}, "process 4194305: id outside 1 to 4194304", beforeTasks},
	{"duplicated pid", func(r *records) {
		r.procs[1].PID, r.procs[1].Threads[0].TID = testPID, testPID
	}, "process 4100001: pid already used by process 4100001", beforeTasks},
	{"tid of another process", func(r *records) {
		r.procs[1].Threads = append(r.procs[1].Threads, snapshot.Thread{TID: testTID})
	}, "thread 4100002 of process 4100003: tid already used by process 4100001", beforeTasks},
	{"negative tid", func(r *records) {
		r.procs[0].Threads[1].TID = -2
	}, "thread of process 4100001 -2: id outside 1 to 4194304", beforeTasks},
	{"no main thread", func(r *records) {
		r.procs[1].Threads[0].TID = childPID + 1
	}, "process 4100003: no main thread 4100003 among its 1 threads", beforeTasks},
	{"negative parent", func(r *records) {
		r.procs[0].PPID = -1
	}, "process 4100001: negative parent -1", beforeTasks},
	{"own parent", func(r *records) {
		r.procs[0].PPID = testPID
	}, "process 4100001: it is its own parent", beforeTasks},
	{"parent cycle", func(r *records) {
		r.procs[0].PPID = childPID
	}, "process 4100001: its parents form a cycle", beforeTasks},
	{"unknown state", func(r *records) {
		r.procs[1].State = 9
	}, "process 4100003: unknown state state(9)", beforeTasks},
	{"pipe data beyond capacity", func(r *records) {
		r.pipes[7].Data = make([]byte, 8192)
	}, "pipe 7: 8192 bytes queued, more than its capacity of 4096", beforeTasks},
	{"pipe data beyond default capacity", func(r *records) {
		r.pipes[7].Capacity, r.pipes[7].Data = 0, make([]byte, 1<<17)
	}, "pipe 7: 131072 bytes queued, more than its capacity of 65536", beforeTasks},
	{"pipe capacity of 4 GiB", func(r *records) {
		r.pipes[7].Capacity = 1<<32 - 1
	}, "pipe 7: capacity 4294967295 bytes, limit 2147483648", beforeTasks},
	{"pipe file of missing pipe", func(r *records) {
		r.files[2].PipeID = 8
	}, "file 2 (pipe): pipe 8 is not in the snapshot", beforeTasks},
	{"memfd larger than off_t", func(r *records) {
		r.shms[9].Size = 1 << 63
	}, "shared memory 9 (memfd): size 9223372036854775808 does not fit a file size", beforeTasks},
	{"shared anonymous memory of 2^60 bytes", func(r *records) {
		r.shms[9].Kind, r.shms[9].Size = snapshot.ShmAnon, 1<<60
	}, "shared memory 9 (anon): size 1152921504606846976 is larger than the user address space", beforeTasks},
	{"pages outside every mapping", func(r *records) {
		r.pages[0].Ranges[0] = snapshot.PageRange{Addr: 0x500000, Len: 0x1000}
	}, "pages of process 4100001: range [0x500000, 0x501000) is outside every mapping at 0x500000", atPages},
	{"pages running past a mapping", func(r *records) {
		r.pages[0].Ranges[0] = snapshot.PageRange{Addr: 0x402000, Len: 0x2000}
	}, "pages of process 4100001: range [0x402000, 0x404000) is outside every mapping at 0x403000", atPages},
	{"pages of a process not in the snapshot", func(r *records) {
		r.pages[0].PID = 1
	}, "pages of process 1, which is not in the snapshot", atPages},
	{"pages beyond the memfd", func(r *records) {
		r.pages[1].Ranges[0].Addr = 0x2000
	}, "pages [0x2000, +0x1000) of shared memory 9 lie beyond its size 8192", atPages},
	{"pages of missing shared memory", func(r *records) {
		r.pages[1].ShmID = 10
	}, "pages of shared memory 10, which is not in the snapshot", atPages},
}

func TestValidateAcceptsValid(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(r *records)
	}{
		{"as built", func(*records) {}},
		{"parent outside the snapshot", func(r *records) { r.procs[0].PPID = 77 }},
		{"zombie without memory or threads", func(r *records) {
			r.procs[1].State, r.procs[1].MM, r.procs[1].Threads = snapshot.StateZombie, nil, nil
		}},
		{"pages across adjacent mappings", func(r *records) {
			r.pages[0].Ranges[0] = snapshot.PageRange{Addr: 0x400000, Len: 0x3000}
		}},
		{"pages of a memfd's partial last page", func(r *records) {
			r.shms[9].Size = 0x1001
		}},
		{"fd under a raised RLIMIT_NOFILE", func(r *records) {
			r.procs[0].Identity.Rlimits = []snapshot.Rlimit{{Resource: unix.RLIMIT_NOFILE, Cur: 1 << 21, Max: 1 << 22}}
			r.procs[0].FDs[1].Num = 1<<22 - 1
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			recs := validRecords()
			tt.edit(recs)
			if err := readRecords(t, recs.write(t)).validateAll(); err != nil {
				t.Errorf("validate() = %v, want nil error", err)
			}
		})
	}
}

func TestValidateRejectsHostile(t *testing.T) {
	for _, tt := range hostileCases {
		t.Run(tt.name, func(t *testing.T) {
			recs := validRecords()
			if tt.where != writerRejects {
				tt.edit(recs)
			}
			decoded := readRecords(t, recs.write(t))
			if tt.where == writerRejects {
				tt.edit(decoded)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := decoded.validateAll()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("validate() = %v, want an ErrInvalidSnapshot error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate() = %q, want it to contain %q", err, tt.want)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
				t.Errorf("validate() allocated %d bytes, want under 64 KiB", grew)
			}
		})
	}
}

// TestRestoreRejectsHostile runs the whole Restore on each hostile
// snapshot that the validation before task creation catches, and checks
// that Restore creates no task. The page cases are left out, because
// their tasks exist by the time their page sections are read, and so are
// the cases that snapshot.Writer refuses to write.
func TestRestoreRejectsHostile(t *testing.T) {
	for _, tt := range hostileCases {
		if tt.where != beforeTasks {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			recs := validRecords()
			tt.edit(recs)
			stats, err := Restore(bytes.NewReader(recs.write(t)), Options{})
			if !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore() = %v, want an ErrInvalidSnapshot error containing %q", err, tt.want)
			}
			if stats.Processes != 0 || stats.Threads != 0 {
				t.Errorf("Restore() created %d processes and %d threads, want none", stats.Processes, stats.Threads)
			}
		})
	}
}
