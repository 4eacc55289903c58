// Package snapshot defines the file format in which ksu carries the state
// of checkpointed processes from the old kernel to the new one. It holds
// the Go types of that state and their encoding, a section stream
// compressed with zstd, and the newc cpio wrapping that puts the stream
// into an initramfs.
//
// The dump writes a snapshot one section at a time with a Writer, and
// memory pages go from the process into the compressor without a copy of
// the whole memory. ksu-init reads it back with a Reader, one section at a
// time, and page data streams from the decompressor into the target
// process. This comment specifies the format completely: a reader can be
// written from it alone.
//
//	w, err := snapshot.NewWriter(dst, snapshot.WriterOptions{})
//	err = w.WriteMeta(&meta)
//	err = w.WriteProcess(&proc) // and WriteFile, WritePipe, WriteSharedMemory, WritePath
//	err = w.WritePages(&snapshot.Pages{PID: pid, Ranges: ranges}, memReader)
//	err = w.Close()
//
//	r, err := snapshot.NewReader(src, snapshot.ReaderOptions{})
//	meta := r.Meta()
//	for {
//		s, err := r.Next() // io.EOF after the end section
//		switch s.Type {
//		case snapshot.SectionProcess:
//			p, err := s.Process()
//		case snapshot.SectionPages:
//			pages := s.Pages() // then read pages.Size() bytes from s
//		default:
//			// a section type from a newer minor version: skip it
//		}
//	}
//
// # Stream layout
//
// A snapshot file is a zstd stream (RFC 8878). The writer emits frames
// with content checksums and a window of 8 MiB; readers accept windows
// up to 64 MiB. All offsets in this description and in errors count
// bytes of the decompressed stream, which is:
//
//	offset  size  content
//	     0    16  file header
//	    16     …  section 0: Meta
//	     …     …  sections 1 … n-1
//	     …     …  section n: End, then the stream ends
//
//	file header (16 bytes)
//	+----------------------------+---------+---------+-------------+
//	| magic "KSUSNAP\0"  8 bytes | major   | minor   | CRC-32C     |
//	| 4b 53 55 53 4e 41 50 00    | u16 LE  | u16 LE  | u32 LE      |
//	+----------------------------+---------+---------+-------------+
//	  the CRC-32C covers bytes 0 to 11
//
//	section (12 + length + 4 bytes)
//	+-----------+-----------+----------------------+-------------+
//	| type      | length    | payload              | CRC-32C     |
//	| u32 LE    | u64 LE    | length bytes         | u32 LE      |
//	+-----------+-----------+----------------------+-------------+
//	  the CRC-32C covers the type, the length and the payload
//
// Fixed-size integers are little endian. CRC-32C is the CRC-32 with the
// Castagnoli polynomial (0x1EDC6F41, reflected 0x82F63B78), the one of
// iSCSI and of SSE 4.2's crc32 instruction, with the usual initial value
// and final inversion; Go's hash/crc32.Castagnoli computes it. Each
// section's checksum follows its payload, so a writer can stream page
// data and a reader checks the checksum once the payload has been read.
//
// # Sections
//
//	type  name           payload
//	   1  Meta           Meta record
//	   2  Process        Process record
//	   3  File           File record (an open file description)
//	   4  Pipe           Pipe record
//	   5  SharedMemory   SharedMemory record
//	   6  Pages          record length, Pages record, its CRC-32C, page data
//	   7  End            End record
//	   8  Path           PathEntry record (since minor version 1)
//
// Order: Meta is section 0 and appears once. Record sections (types 2 to
// 5, and 8) come next, in any order, and all of them before the first Pages
// section, so a restore can build every process before memory arrives.
// Sections of a type the reader does not know may appear anywhere
// between Meta and End. End is the last section and nothing follows it:
// a stream that ends elsewhere, even at a section boundary, is
// truncated. The End record counts the sections before it (Meta
// included) and the page data bytes of all Pages sections, and a reader
// checks both counts.
//
// A Pages section's payload is:
//
//	+------------+------------------+----------+---------------------------+
//	| record len | Pages record     | CRC-32C  | data: each range's bytes, |
//	| u32 LE     | record len bytes | u32 LE   | in order, back to back    |
//	+------------+------------------+----------+---------------------------+
//
// The inner CRC-32C covers the record length and the record, so a reader
// can trust the ranges before it writes any data to them. The section's
// CRC-32C still covers the whole payload. The data's length is the sum of
// the ranges' lengths and must equal the rest of the payload.
//
// A Pages record names either a process (pid > 0, shm_id 0, addresses
// are virtual addresses) or a SharedMemory object (shm_id set, pid 0,
// addresses are offsets into the object). It has 1 to 65536 ranges.
// Each range is non-empty, starts and ends on a multiple of
// Meta.page_size, does not wrap past 2^64, and starts at or after the
// end of the range before it. Pages absent from every Pages section are
// zero in VMAAnon and shared memory mappings, and read from the file in
// VMAFile mappings, so a writer may skip zero pages only where they
// would read as zero anyway.
//
// # Compatibility
//
// The major version changes when a reader of the old version would
// misread new streams; a reader rejects any major version it does not
// know with a *VersionError, before reading anything past the version.
// The minor version grows when a version adds section types or record
// fields. A reader accepts any minor version of its major version: it
// skips a section of unknown type by its length (still checking its
// CRC-32C), and it skips record fields with unknown numbers. Within a
// major version, section type numbers and field numbers never change
// meaning, and a field's wire type never changes.
//
// # Limits
//
// A reader checks each size and count against a limit before it
// allocates memory for it. A record payload is read into memory that
// grows with the bytes actually read, so a claimed length larger than
// the data that follows fails when the data runs out, without an
// allocation of the claimed size. The format has no element counts: a
// list is as long as the elements actually present, so a forged count
// has nothing to act on.
//
//	any section payload              4 GiB (2^32 bytes)
//	record section payload           256 MiB (2^28 bytes), all types except Pages
//	Pages record                     2 MiB, and 65536 ranges
//	threads per process              65536
//	VMAs per process                 262144
//	fds per process                  1048576
//	sigactions per process           64
//	pending signals per list         65536
//	itimers per process              3
//	POSIX timers per process         65536
//	supplementary groups             65536
//	rlimits                          64
//	auxv words                       1024
//	epoll targets                    1048576
//	socket options                   1024
//	messages per socket queue        65536
//	descriptors per socket message   1024
//	pending connections per socket   65536
//	pids per path entry              4194304
//
// This reader also stops a record whose list elements would take more
// than 256 MiB once decoded. An element of 2 payload bytes can become a
// value of a hundred bytes, and zstd shrinks a run of them to almost
// nothing.
//
// # Records
//
// A record is a sequence of fields, each a key followed by a value:
//
//	key    = uvarint(field_number << 3 | wire_type)
//	wire 0 = uvarint value
//	wire 2 = uvarint length, then length bytes
//
// A uvarint is an unsigned LEB128 number of at most 10 bytes: 7 bits per
// byte, least significant group first, the high bit set on every byte
// but the last. Wire types 1 and 3 to 7 are invalid. Field numbers run
// from 1 to 2^29-1; this version uses 1 to 63. The types in the tables
// below map onto wire types as follows:
//
//	uint8 … uint64   wire 0, the value; it must fit the type
//	int32, int64     wire 0, zigzag: (n << 1) ^ (n >> 63); it must fit the type
//	bool             wire 0, 0 or 1
//	duration         wire 0, zigzag nanoseconds
//	time             wire 0, zigzag nanoseconds since 1970-01-01 UTC
//	string, bytes    wire 2, the bytes (strings need not be UTF-8)
//	R                wire 2, the nested record R
//	optional R       wire 2, the nested record R; present even when empty
//	repeated R       wire 2 per element, in order, each a nested record R
//	packed uintN     wire 2, the elements as consecutive uvarints
//
// A type in parentheses names the Go type of the field, whose values are
// listed after the tables. Writers leave out fields whose value is zero,
// empty, or an all-zero nested record, so an absent field means zero;
// a time field is left out only for Go's zero time.Time, which has no
// nanosecond value, so the Unix epoch itself is written. Fields may come
// in any order. A singular field that appears twice, a known field with
// the wrong wire type, a value that does not fit its type, or a length
// that runs past its record is invalid. Each record table lists field
// number, name and type:
//
//	Meta
//	   1  kernel_release   string
//	   2  boot_id          string
//	   3  machine          string
//	   4  page_size        uint32
//	   5  monotonic        duration
//	   6  boottime         duration
//	   7  time             time
//	   8  hostname         string
//	   9  producer         string
//	  10  vdso             bytes
//	  11  links            repeated Link
//	  12  routes           repeated Route
//
//	Link
//	   1  name             string
//	   2  mac              bytes
//	   3  mtu              uint32
//	   4  up               bool
//	   5  addrs            repeated Addr
//
//	Addr
//	   1  prefix           string
//
//	Route
//	   1  dst              string
//	   2  gateway          string
//	   3  link             string
//	   4  src              string
//	   5  priority         uint32
//	   6  scope            uint8
//	   7  protocol         uint8
//
//	End
//	   1  sections         uint64
//	   2  page_bytes       uint64
//
//	Process
//	   1  pid              int32
//	   2  ppid             int32
//	   3  pgid             int32
//	   4  sid              int32
//	   5  state            uint8 (ProcessState)
//	   6  exit_status      int32
//	   7  exit_signal      int32
//	   8  identity         Identity
//	   9  mm               optional MM
//	  10  threads          repeated Thread
//	  11  fds              repeated FD
//	  12  sigactions       repeated Sigaction
//	  13  pending          repeated Siginfo
//	  14  itimers          repeated Itimer
//	  15  posix_timers     repeated PosixTimer
//
//	Thread
//	   1  tid              int32
//	   2  comm             string
//	   3  regs             Regs
//	   4  xsave            bytes
//	   5  sigmask          uint64
//	   6  rseq             Rseq
//	   7  robust_list      RobustList
//	   8  sigaltstack      SigAltStack
//	   9  clear_child_tid  uint64
//	  10  syscall          Syscall
//	  11  pending          repeated Siginfo
//	  12  sched_policy     int32
//	  13  sched_priority   int32
//	  14  nice             int32
//	  15  timer_slack      uint64
//
//	Regs
//	   1  r15              uint64
//	   2  r14              uint64
//	   3  r13              uint64
//	   4  r12              uint64
//	   5  rbp              uint64
//	   6  rbx              uint64
//	   7  r11              uint64
//	   8  r10              uint64
//	   9  r9               uint64
//	  10  r8               uint64
//	  11  rax              uint64
//	  12  rcx              uint64
//	  13  rdx              uint64
//	  14  rsi              uint64
//	  15  rdi              uint64
//	  16  orig_rax         uint64
//	  17  rip              uint64
//	  18  cs               uint64
//	  19  eflags           uint64
//	  20  rsp              uint64
//	  21  ss               uint64
//	  22  fs_base          uint64
//	  23  gs_base          uint64
//	  24  ds               uint64
//	  25  es               uint64
//	  26  fs               uint64
//	  27  gs               uint64
//
//	Rseq
//	   1  addr             uint64
//	   2  len              uint32
//	   3  sig              uint32
//
//	RobustList
//	   1  head             uint64
//	   2  len              uint64
//
//	SigAltStack
//	   1  sp               uint64
//	   2  flags            int32
//	   3  size             uint64
//
//	Syscall
//	   1  nr               int64
//	   2  result           int64
//	   3  restart          uint8 (RestartMode)
//
//	Sigaction
//	   1  signal           int32
//	   2  handler          uint64
//	   3  flags            uint64
//	   4  restorer         uint64
//	   5  mask             uint64
//
//	Siginfo
//	   1  signal           int32
//	   2  info             bytes
//
//	Itimer
//	   1  which            int32
//	   2  interval         duration
//	   3  value            duration
//
//	PosixTimer
//	   1  id               int32
//	   2  clock            int32
//	   3  notify           int32
//	   4  signal           int32
//	   5  sigev_value      uint64
//	   6  notify_tid       int32
//	   7  interval         duration
//	   8  value            duration
//	   9  overrun          int32
//
//	FD
//	   1  num              int32
//	   2  close_on_exec    bool
//	   3  file             uint64
//
//	Identity
//	   1  comm             string
//	   2  cwd              string
//	   3  root             string
//	   4  umask            uint32
//	   5  cgroup           string
//	   6  uid              uint32
//	   7  euid             uint32
//	   8  suid             uint32
//	   9  fsuid            uint32
//	  10  gid              uint32
//	  11  egid             uint32
//	  12  sgid             uint32
//	  13  fsgid            uint32
//	  14  groups           packed uint32
//	  15  cap_inheritable  uint64
//	  16  cap_permitted    uint64
//	  17  cap_effective    uint64
//	  18  cap_bounding     uint64
//	  19  cap_ambient      uint64
//	  20  securebits       uint32
//	  21  no_new_privs     bool
//	  22  dumpable         int32
//	  23  rlimits          repeated Rlimit
//	  24  personality      uint32
//	  25  sched_policy     int32
//	  26  sched_priority   int32
//	  27  nice             int32
//	  28  oom_score_adj    int32
//	  29  parent_death_signal int32
//	  30  child_subreaper  bool
//
//	Rlimit
//	   1  resource         int32
//	   2  cur              uint64
//	   3  max              uint64
//
//	MM
//	   1  start_code       uint64
//	   2  end_code         uint64
//	   3  start_data       uint64
//	   4  end_data         uint64
//	   5  start_brk        uint64
//	   6  brk              uint64
//	   7  start_stack      uint64
//	   8  arg_start        uint64
//	   9  arg_end          uint64
//	  10  env_start        uint64
//	  11  env_end          uint64
//	  12  auxv             packed uint64
//	  13  exe              FileRef
//	  14  vmas             repeated VMA
//
//	VMA
//	   1  start            uint64
//	   2  end              uint64
//	   3  prot             uint32
//	   4  flags            uint32 (VMAFlags)
//	   5  kind             uint8 (VMAKind)
//	   6  offset           uint64
//	   7  file             FileRef
//	   8  shm_id           uint64
//	   9  madvise          uint32 (Madvise)
//
//	FileRef
//	   1  path             string
//	   2  dev              uint64
//	   3  inode            uint64
//	   4  mode             uint32
//	   5  rdev             uint64
//	   6  size             int64
//	   7  mod_time         time
//
//	SharedMemory
//	   1  id               uint64
//	   2  kind             uint8 (ShmKind)
//	   3  size             uint64
//	   4  name             string
//	   5  flags            uint32
//	   6  seals            uint32
//	   7  key              int32
//	   8  inode            uint64
//	   9  mode             uint32
//
//	Pages
//	   1  pid              int32
//	   2  shm_id           uint64
//	   3  ranges           repeated PageRange
//
//	PageRange
//	   1  addr             uint64
//	   2  len              uint64
//
//	File
//	   1  id               uint64
//	   2  kind             uint8 (FileKind)
//	   3  flags            uint32
//	   4  pos              int64
//	   5  ref              FileRef
//	   6  pipe_id          uint64
//	   7  shm_id           uint64
//	   8  eventfd          optional EventFD
//	   9  epoll            optional Epoll
//	  10  timerfd          optional TimerFD
//	  11  signalfd         optional SignalFD
//	  12  socket           optional Socket
//
//	Pipe
//	   1  id               uint64
//	   2  capacity         uint32
//	   3  data             bytes
//	   4  packets          repeated PipePacket
//
//	PipePacket
//	   1  offset           uint32
//	   2  len              uint32
//
//	EventFD
//	   1  count            uint64
//	   2  semaphore        bool
//
//	Epoll
//	   1  targets          repeated EpollTarget
//
//	EpollTarget
//	   1  fd               int32
//	   2  file             uint64
//	   3  events           uint32
//	   4  data             uint64
//
//	TimerFD
//	   1  clock            int32
//	   2  flags            int32
//	   3  interval         duration
//	   4  value            duration
//	   5  ticks            uint64
//	   6  deadline         time
//
//	SignalFD
//	   1  mask             uint64
//
//	Socket
//	   1  family           int32
//	   2  type             int32
//	   3  protocol         int32
//	   4  state            uint32
//	   5  local            bytes
//	   6  remote           bytes
//	   7  backlog          int32
//	   8  shutdown         uint32
//	   9  peer             uint64
//	  10  options          repeated SockOpt
//	  11  recv             repeated SocketMessage
//	  12  send             repeated SocketMessage
//	  13  tcp              optional TCPRepair
//	  14  pending          packed uint64
//
//	SockOpt
//	   1  level            int32
//	   2  name             int32
//	   3  value            bytes
//
//	SocketMessage
//	   1  data             bytes
//	   2  addr             bytes
//	   3  files            packed uint64
//
//	PathEntry
//	   1  path             string
//	   2  mount            string
//	   3  mode             uint32
//	   4  uid              uint32
//	   5  gid              uint32
//	   6  size             int64
//	   7  mod_time         time
//	   8  offset           uint64
//	   9  data             bytes
//	  10  pids             packed uint32
//	  11  dev              uint64
//	  12  inode            uint64
//
//	TCPRepair
//	   1  send_seq         uint32
//	   2  recv_seq         uint32
//	   3  unsent           uint32
//	   4  mss              uint32
//	   5  send_wscale      uint8
//	   6  recv_wscale      uint8
//	   7  timestamp        uint32
//	   8  sack             bool
//	   9  timestamps       bool
//	  10  window_scaling   bool
//	  11  snd_wl1          uint32
//	  12  snd_wnd          uint32
//	  13  max_window       uint32
//	  14  rcv_wnd          uint32
//	  15  rcv_wup          uint32
//
// Values of the enumerated types:
//
//	ProcessState   0 running (or sleeping), 1 stopped, 2 zombie
//	RestartMode    0 none, 1 syscall (rewind rip by 2, rax = orig_rax),
//	               2 block (restart_syscall), 3 interrupted (-EINTR)
//	VMAKind        0 anon, 1 file, 2 shmem, 3 vdso, 4 vvar, 5 vvar_vclock, 6 vsyscall
//	VMAFlags       bit 0 shared, 1 grows down, 2 locked, 3 lock on fault, 4 hugetlb
//	Madvise        bit 0 random, 1 sequential, 2 dontfork, 3 dontdump,
//	               4 mergeable, 5 hugepage, 6 nohugepage, 7 wipeonfork
//	ShmKind        0 anonymous shared memory, 1 memfd, 2 System V,
//	               3 deleted file
//	FileKind       1 regular, 2 directory, 3 char device, 4 pipe, 5 FIFO,
//	               6 eventfd, 7 epoll, 8 timerfd, 9 signalfd, 10 memfd,
//	               11 Unix socket, 12 TCP socket, 13 UDP socket
//
// Other integer fields hold the Linux x86-64 values of the system call
// or structure named in the Go field's comment: signal numbers, signal
// masks with bit N-1 for signal N, SA_*, O_*, PROT_* and SIGEV_*
// constants, clock ids, wait statuses and socket address structures.
//
// A PathEntry is a directory or regular file that the processes reach
// (open files, mapped files, working directories, bound Unix socket
// paths, and the directories above them) and that the new kernel's boot
// does not bring back. With mount set, the path lives on the tmpfs
// mounted there, and the restore creates it with mode, uid, gid and
// mod_time, and a regular file with its content: data written at offset.
// A file larger than one record holds comes in several entries of the
// same path with growing offsets; the first carries size and the other
// metadata. With mount empty, the path is on disk below /tmp, and the
// restore keeps the boot-time cleanup from deleting it. The entries of a
// tmpfs come in path order, so a directory precedes what it contains,
// and the mount point itself is the first. pids lists the processes that
// reference the path or a path below it. dev and inode are the path's
// st_dev and st_ino on the old kernel: a FileRef with the same pair
// names the recreated file.
//
// A Pipe's data is its unread bytes, oldest first. Each PipePacket marks
// data[offset:offset+len] as one packet-mode buffer (pipe(7), O_DIRECT):
// a read that reaches it returns no bytes after it and drops what of it
// did not fit. Packets are sorted, do not overlap, and are at most a page
// long; bytes outside every packet are stream data. A restore refills the
// stream bytes through an ordinary write end and each packet with one
// write through an O_DIRECT write end. A Pipe without packets holds only
// stream data, as in streams written before field 4 existed.
//
// References between records use ids: FD.file, EpollTarget.file,
// SocketMessage.files, Socket.peer and Socket.pending name a File.id;
// File.pipe_id names a Pipe.id; File.shm_id, VMA.shm_id and
// Pages.shm_id name a SharedMemory.id. Ids are never 0, and writers
// keep them unique per section type. The reader does not resolve
// references; the restore does.
//
// # Archive
//
// On its way to the new kernel, the compressed stream (the payload) is
// stored in a newc cpio archive that is appended to the initramfs.
// WriteCPIO and CPIOWriter write it, and OpenCPIO reads it from the
// unpacked root. With the directory "ksu" the archive holds, in order:
//
//	ksu/               directory, mode 0700
//	ksu/snapshot.000   payload bytes 0 to part_size-1, mode 0400
//	ksu/snapshot.001   the next part_size bytes
//	…                  the last part may be shorter; there is always one
//	ksu/snapshot.hdr   archive header, mode 0400
//	TRAILER!!!
//
// A newc file holds at most 2^32-1 bytes, hence the parts; the writers
// use 1 GiB parts unless told otherwise, and there are at most 1000. The
// archive header file is:
//
//	offset  size  field
//	     0     8  magic "KSUARCH\0" (4b 53 55 41 52 43 48 00)
//	     8     2  version, 1; readers reject any other (*VersionError)
//	    10     2  R, length of the kernel release, at most 64
//	    12     8  size: length of the decompressed stream
//	    20     8  compressed size: length of the payload
//	    28     8  part size, 1 to 2^32-1
//	    36     4  parts: max(1, ceil(compressed size / part size))
//	    40     4  CRC-32C of the payload
//	    44     R  kernel release of the old kernel
//	  44+R     4  CRC-32C of bytes 0 to 44+R-1
//
// all integers little endian. A reader checks the header's checksum and
// fields, then that each part exists with the length the header
// implies, then the payload's CRC-32C when it has read the last byte.
// Passed as ReaderOptions.Size, the header's size is checked against the
// decompressed length when the End section is read.
//
// # Errors
//
// Every error about a malformed stream is a *FormatError that gives the
// section index (-1 for the file header), its type, and the offset in the
// decompressed stream where the reader found the problem, with the path of
// the field inside a record ("threads[2].regs: …"). It wraps one of
// ErrTruncated, ErrChecksum, ErrTooLarge or ErrInvalid for errors.Is.
package snapshot
