package snapshot

import "time"

// Field tables of the metadata and process records. doc.go lists the
// same numbers and types, and a test keeps the two in step.

var metaSchema = newSchema("Meta",
	stringField(1, "kernel_release", func(m *Meta) *string { return &m.KernelRelease }),
	stringField(2, "boot_id", func(m *Meta) *string { return &m.BootID }),
	stringField(3, "machine", func(m *Meta) *string { return &m.Machine }),
	uintField(4, "page_size", func(m *Meta) *uint32 { return &m.PageSize }),
	durationField(5, "monotonic", func(m *Meta) *time.Duration { return &m.Monotonic }),
	durationField(6, "boottime", func(m *Meta) *time.Duration { return &m.Boottime }),
	timeField(7, "time", func(m *Meta) *time.Time { return &m.Time }),
	stringField(8, "hostname", func(m *Meta) *string { return &m.Hostname }),
	stringField(9, "producer", func(m *Meta) *string { return &m.Producer }),
	bytesField(10, "vdso", func(m *Meta) *[]byte { return &m.VDSO }),
	repeatedField(11, "links", func(m *Meta) *[]Link { return &m.Links }, linkSchema, maxLinks),
	repeatedField(12, "routes", func(m *Meta) *[]Route { return &m.Routes }, routeSchema, maxRoutes),
)

var linkSchema = newSchema("Link",
	stringField(1, "name", func(l *Link) *string { return &l.Name }),
	bytesField(2, "mac", func(l *Link) *[]byte { return &l.MAC }),
	uintField(3, "mtu", func(l *Link) *uint32 { return &l.MTU }),
	boolField(4, "up", func(l *Link) *bool { return &l.Up }),
	repeatedField(5, "addrs", func(l *Link) *[]Addr { return &l.Addrs }, addrSchema, maxAddrs),
)

var addrSchema = newSchema("Addr",
	stringField(1, "prefix", func(a *Addr) *string { return &a.Prefix }),
)

var routeSchema = newSchema("Route",
	stringField(1, "dst", func(r *Route) *string { return &r.Dst }),
	stringField(2, "gateway", func(r *Route) *string { return &r.Gateway }),
	stringField(3, "link", func(r *Route) *string { return &r.Link }),
	stringField(4, "src", func(r *Route) *string { return &r.Src }),
	uintField(5, "priority", func(r *Route) *uint32 { return &r.Priority }),
	uintField(6, "scope", func(r *Route) *uint8 { return &r.Scope }),
	uintField(7, "protocol", func(r *Route) *uint8 { return &r.Protocol }),
)

var endSchema = newSchema("End",
	uintField(1, "sections", func(e *end) *uint64 { return &e.Sections }),
	uintField(2, "page_bytes", func(e *end) *uint64 { return &e.PageBytes }),
)

var processSchema = newSchema("Process",
	intField(1, "pid", func(p *Process) *int32 { return &p.PID }),
	intField(2, "ppid", func(p *Process) *int32 { return &p.PPID }),
	intField(3, "pgid", func(p *Process) *int32 { return &p.PGID }),
	intField(4, "sid", func(p *Process) *int32 { return &p.SID }),
	uintField(5, "state", func(p *Process) *ProcessState { return &p.State }),
	intField(6, "exit_status", func(p *Process) *int32 { return &p.ExitStatus }),
	intField(7, "exit_signal", func(p *Process) *int32 { return &p.ExitSignal }),
	recordField(8, "identity", func(p *Process) *Identity { return &p.Identity }, identitySchema),
	optionalField(9, "mm", func(p *Process) **MM { return &p.MM }, mmSchema),
	repeatedField(10, "threads", func(p *Process) *[]Thread { return &p.Threads }, threadSchema, maxThreads),
	repeatedField(11, "fds", func(p *Process) *[]FD { return &p.FDs }, fdSchema, maxFDs),
	repeatedField(12, "sigactions", func(p *Process) *[]Sigaction { return &p.Sigactions }, sigactionSchema, maxSigactions),
	repeatedField(13, "pending", func(p *Process) *[]Siginfo { return &p.Pending }, siginfoSchema, maxPending),
	repeatedField(14, "itimers", func(p *Process) *[]Itimer { return &p.Itimers }, itimerSchema, maxItimers),
	repeatedField(15, "posix_timers", func(p *Process) *[]PosixTimer { return &p.PosixTimers }, posixTimerSchema, maxPosixTimers),
)

var threadSchema = newSchema("Thread",
	intField(1, "tid", func(t *Thread) *int32 { return &t.TID }),
	stringField(2, "comm", func(t *Thread) *string { return &t.Comm }),
	recordField(3, "regs", func(t *Thread) *Regs { return &t.Regs }, regsSchema),
	bytesField(4, "xsave", func(t *Thread) *[]byte { return &t.XSave }),
	uintField(5, "sigmask", func(t *Thread) *uint64 { return &t.SigMask }),
	recordField(6, "rseq", func(t *Thread) *Rseq { return &t.Rseq }, rseqSchema),
	recordField(7, "robust_list", func(t *Thread) *RobustList { return &t.RobustList }, robustListSchema),
	recordField(8, "sigaltstack", func(t *Thread) *SigAltStack { return &t.SigAltStack }, sigAltStackSchema),
	uintField(9, "clear_child_tid", func(t *Thread) *uint64 { return &t.ClearChildTID }),
	recordField(10, "syscall", func(t *Thread) *Syscall { return &t.Syscall }, syscallSchema),
	repeatedField(11, "pending", func(t *Thread) *[]Siginfo { return &t.Pending }, siginfoSchema, maxPending),
	intField(12, "sched_policy", func(t *Thread) *int32 { return &t.SchedPolicy }),
	intField(13, "sched_priority", func(t *Thread) *int32 { return &t.SchedPriority }),
	intField(14, "nice", func(t *Thread) *int32 { return &t.Nice }),
	uintField(15, "timer_slack", func(t *Thread) *uint64 { return &t.TimerSlack }),
)

// regsSchema numbers the registers in struct user_regs_struct order.
var regsSchema = newSchema("Regs",
	uintField(1, "r15", func(r *Regs) *uint64 { return &r.R15 }),
	uintField(2, "r14", func(r *Regs) *uint64 { return &r.R14 }),
	uintField(3, "r13", func(r *Regs) *uint64 { return &r.R13 }),
	uintField(4, "r12", func(r *Regs) *uint64 { return &r.R12 }),
	uintField(5, "rbp", func(r *Regs) *uint64 { return &r.Rbp }),
	uintField(6, "rbx", func(r *Regs) *uint64 { return &r.Rbx }),
	uintField(7, "r11", func(r *Regs) *uint64 { return &r.R11 }),
	uintField(8, "r10", func(r *Regs) *uint64 { return &r.R10 }),
	uintField(9, "r9", func(r *Regs) *uint64 { return &r.R9 }),
	uintField(10, "r8", func(r *Regs) *uint64 { return &r.R8 }),
	uintField(11, "rax", func(r *Regs) *uint64 { return &r.Rax }),
	uintField(12, "rcx", func(r *Regs) *uint64 { return &r.Rcx }),
	uintField(13, "rdx", func(r *Regs) *uint64 { return &r.Rdx }),
	uintField(14, "rsi", func(r *Regs) *uint64 { return &r.Rsi }),
	uintField(15, "rdi", func(r *Regs) *uint64 { return &r.Rdi }),
	uintField(16, "orig_rax", func(r *Regs) *uint64 { return &r.OrigRax }),
	uintField(17, "rip", func(r *Regs) *uint64 { return &r.Rip }),
	uintField(18, "cs", func(r *Regs) *uint64 { return &r.Cs }),
	uintField(19, "eflags", func(r *Regs) *uint64 { return &r.Eflags }),
	uintField(20, "rsp", func(r *Regs) *uint64 { return &r.Rsp }),
	uintField(21, "ss", func(r *Regs) *uint64 { return &r.Ss }),
	uintField(22, "fs_base", func(r *Regs) *uint64 { return &r.FsBase }),
	uintField(23, "gs_base", func(r *Regs) *uint64 { return &r.GsBase }),
	uintField(24, "ds", func(r *Regs) *uint64 { return &r.Ds }),
	uintField(25, "es", func(r *Regs) *uint64 { return &r.Es }),
	uintField(26, "fs", func(r *Regs) *uint64 { return &r.Fs }),
	uintField(27, "gs", func(r *Regs) *uint64 { return &r.Gs }),
)

var rseqSchema = newSchema("Rseq",
	uintField(1, "addr", func(r *Rseq) *uint64 { return &r.Addr }),
	uintField(2, "len", func(r *Rseq) *uint32 { return &r.Len }),
	uintField(3, "sig", func(r *Rseq) *uint32 { return &r.Sig }),
)

var robustListSchema = newSchema("RobustList",
	uintField(1, "head", func(r *RobustList) *uint64 { return &r.Head }),
	uintField(2, "len", func(r *RobustList) *uint64 { return &r.Len }),
)

var sigAltStackSchema = newSchema("SigAltStack",
	uintField(1, "sp", func(s *SigAltStack) *uint64 { return &s.SP }),
	intField(2, "flags", func(s *SigAltStack) *int32 { return &s.Flags }),
	uintField(3, "size", func(s *SigAltStack) *uint64 { return &s.Size }),
)

var syscallSchema = newSchema("Syscall",
	intField(1, "nr", func(s *Syscall) *int64 { return &s.Nr }),
	intField(2, "result", func(s *Syscall) *int64 { return &s.Result }),
	uintField(3, "restart", func(s *Syscall) *RestartMode { return &s.Restart }),
)

var sigactionSchema = newSchema("Sigaction",
	intField(1, "signal", func(s *Sigaction) *int32 { return &s.Signal }),
	uintField(2, "handler", func(s *Sigaction) *uint64 { return &s.Handler }),
	uintField(3, "flags", func(s *Sigaction) *uint64 { return &s.Flags }),
	uintField(4, "restorer", func(s *Sigaction) *uint64 { return &s.Restorer }),
	uintField(5, "mask", func(s *Sigaction) *uint64 { return &s.Mask }),
)

var siginfoSchema = newSchema("Siginfo",
	intField(1, "signal", func(s *Siginfo) *int32 { return &s.Signal }),
	bytesField(2, "info", func(s *Siginfo) *[]byte { return &s.Info }),
)

var itimerSchema = newSchema("Itimer",
	intField(1, "which", func(t *Itimer) *int32 { return &t.Which }),
	durationField(2, "interval", func(t *Itimer) *time.Duration { return &t.Interval }),
	durationField(3, "value", func(t *Itimer) *time.Duration { return &t.Value }),
)

var posixTimerSchema = newSchema("PosixTimer",
	intField(1, "id", func(t *PosixTimer) *int32 { return &t.ID }),
	intField(2, "clock", func(t *PosixTimer) *int32 { return &t.Clock }),
	intField(3, "notify", func(t *PosixTimer) *int32 { return &t.Notify }),
	intField(4, "signal", func(t *PosixTimer) *int32 { return &t.Signal }),
	uintField(5, "sigev_value", func(t *PosixTimer) *uint64 { return &t.SigevValue }),
	intField(6, "notify_tid", func(t *PosixTimer) *int32 { return &t.NotifyTID }),
	durationField(7, "interval", func(t *PosixTimer) *time.Duration { return &t.Interval }),
	durationField(8, "value", func(t *PosixTimer) *time.Duration { return &t.Value }),
	intField(9, "overrun", func(t *PosixTimer) *int32 { return &t.Overrun }),
)

var fdSchema = newSchema("FD",
	intField(1, "num", func(f *FD) *int32 { return &f.Num }),
	boolField(2, "close_on_exec", func(f *FD) *bool { return &f.CloseOnExec }),
	uintField(3, "file", func(f *FD) *uint64 { return &f.File }),
)

var identitySchema = newSchema("Identity",
	stringField(1, "comm", func(i *Identity) *string { return &i.Comm }),
	stringField(2, "cwd", func(i *Identity) *string { return &i.Cwd }),
	stringField(3, "root", func(i *Identity) *string { return &i.Root }),
	uintField(4, "umask", func(i *Identity) *uint32 { return &i.Umask }),
	stringField(5, "cgroup", func(i *Identity) *string { return &i.Cgroup }),
	uintField(6, "uid", func(i *Identity) *uint32 { return &i.UID }),
	uintField(7, "euid", func(i *Identity) *uint32 { return &i.EUID }),
	uintField(8, "suid", func(i *Identity) *uint32 { return &i.SUID }),
	uintField(9, "fsuid", func(i *Identity) *uint32 { return &i.FSUID }),
	uintField(10, "gid", func(i *Identity) *uint32 { return &i.GID }),
	uintField(11, "egid", func(i *Identity) *uint32 { return &i.EGID }),
	uintField(12, "sgid", func(i *Identity) *uint32 { return &i.SGID }),
	uintField(13, "fsgid", func(i *Identity) *uint32 { return &i.FSGID }),
	packedField(14, "groups", func(i *Identity) *[]uint32 { return &i.Groups }, maxGroups),
	uintField(15, "cap_inheritable", func(i *Identity) *uint64 { return &i.CapInheritable }),
	uintField(16, "cap_permitted", func(i *Identity) *uint64 { return &i.CapPermitted }),
	uintField(17, "cap_effective", func(i *Identity) *uint64 { return &i.CapEffective }),
	uintField(18, "cap_bounding", func(i *Identity) *uint64 { return &i.CapBounding }),
	uintField(19, "cap_ambient", func(i *Identity) *uint64 { return &i.CapAmbient }),
	uintField(20, "securebits", func(i *Identity) *uint32 { return &i.Securebits }),
	boolField(21, "no_new_privs", func(i *Identity) *bool { return &i.NoNewPrivs }),
	intField(22, "dumpable", func(i *Identity) *int32 { return &i.Dumpable }),
	repeatedField(23, "rlimits", func(i *Identity) *[]Rlimit { return &i.Rlimits }, rlimitSchema, maxRlimits),
	uintField(24, "personality", func(i *Identity) *uint32 { return &i.Personality }),
	intField(25, "sched_policy", func(i *Identity) *int32 { return &i.SchedPolicy }),
	intField(26, "sched_priority", func(i *Identity) *int32 { return &i.SchedPriority }),
	intField(27, "nice", func(i *Identity) *int32 { return &i.Nice }),
	intField(28, "oom_score_adj", func(i *Identity) *int32 { return &i.OOMScoreAdj }),
	intField(29, "parent_death_signal", func(i *Identity) *int32 { return &i.ParentDeathSignal }),
	boolField(30, "child_subreaper", func(i *Identity) *bool { return &i.ChildSubreaper }),
)

var rlimitSchema = newSchema("Rlimit",
	intField(1, "resource", func(r *Rlimit) *int32 { return &r.Resource }),
	uintField(2, "cur", func(r *Rlimit) *uint64 { return &r.Cur }),
	uintField(3, "max", func(r *Rlimit) *uint64 { return &r.Max }),
)
