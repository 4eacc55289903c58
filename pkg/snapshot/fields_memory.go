package snapshot

import "time"

// Field tables of the memory records.

var mmSchema = newSchema("MM",
	uintField(1, "start_code", func(m *MM) *uint64 { return &m.StartCode }),
	uintField(2, "end_code", func(m *MM) *uint64 { return &m.EndCode }),
	uintField(3, "start_data", func(m *MM) *uint64 { return &m.StartData }),
	uintField(4, "end_data", func(m *MM) *uint64 { return &m.EndData }),
	uintField(5, "start_brk", func(m *MM) *uint64 { return &m.StartBrk }),
	uintField(6, "brk", func(m *MM) *uint64 { return &m.Brk }),
	uintField(7, "start_stack", func(m *MM) *uint64 { return &m.StartStack }),
	uintField(8, "arg_start", func(m *MM) *uint64 { return &m.ArgStart }),
	uintField(9, "arg_end", func(m *MM) *uint64 { return &m.ArgEnd }),
	uintField(10, "env_start", func(m *MM) *uint64 { return &m.EnvStart }),
	uintField(11, "env_end", func(m *MM) *uint64 { return &m.EnvEnd }),
	packedField(12, "auxv", func(m *MM) *[]uint64 { return &m.Auxv }, maxAuxv),
	recordField(13, "exe", func(m *MM) *FileRef { return &m.Exe }, fileRefSchema),
	repeatedField(14, "vmas", func(m *MM) *[]VMA { return &m.VMAs }, vmaSchema, maxVMAs),
)

var vmaSchema = newSchema("VMA",
	uintField(1, "start", func(v *VMA) *uint64 { return &v.Start }),
	uintField(2, "end", func(v *VMA) *uint64 { return &v.End }),
	uintField(3, "prot", func(v *VMA) *uint32 { return &v.Prot }),
	uintField(4, "flags", func(v *VMA) *VMAFlags { return &v.Flags }),
	uintField(5, "kind", func(v *VMA) *VMAKind { return &v.Kind }),
	uintField(6, "offset", func(v *VMA) *uint64 { return &v.Offset }),
	recordField(7, "file", func(v *VMA) *FileRef { return &v.File }, fileRefSchema),
	uintField(8, "shm_id", func(v *VMA) *uint64 { return &v.ShmID }),
	uintField(9, "madvise", func(v *VMA) *Madvise { return &v.Madvise }),
)

var fileRefSchema = newSchema("FileRef",
	stringField(1, "path", func(f *FileRef) *string { return &f.Path }),
	uintField(2, "dev", func(f *FileRef) *uint64 { return &f.Dev }),
	uintField(3, "inode", func(f *FileRef) *uint64 { return &f.Inode }),
	uintField(4, "mode", func(f *FileRef) *uint32 { return &f.Mode }),
	uintField(5, "rdev", func(f *FileRef) *uint64 { return &f.Rdev }),
	intField(6, "size", func(f *FileRef) *int64 { return &f.Size }),
	timeField(7, "mod_time", func(f *FileRef) *time.Time { return &f.ModTime }),
)

var sharedMemorySchema = newSchema("SharedMemory",
	uintField(1, "id", func(s *SharedMemory) *uint64 { return &s.ID }),
	uintField(2, "kind", func(s *SharedMemory) *ShmKind { return &s.Kind }),
	uintField(3, "size", func(s *SharedMemory) *uint64 { return &s.Size }),
	stringField(4, "name", func(s *SharedMemory) *string { return &s.Name }),
	uintField(5, "flags", func(s *SharedMemory) *uint32 { return &s.Flags }),
	uintField(6, "seals", func(s *SharedMemory) *uint32 { return &s.Seals }),
	intField(7, "key", func(s *SharedMemory) *int32 { return &s.Key }),
	uintField(8, "inode", func(s *SharedMemory) *uint64 { return &s.Inode }),
	uintField(9, "mode", func(s *SharedMemory) *uint32 { return &s.Mode }),
)

var pagesSchema = newSchema("Pages",
	intField(1, "pid", func(p *Pages) *int32 { return &p.PID }),
	uintField(2, "shm_id", func(p *Pages) *uint64 { return &p.ShmID }),
	repeatedField(3, "ranges", func(p *Pages) *[]PageRange { return &p.Ranges }, pageRangeSchema, maxRanges),
)

var pageRangeSchema = newSchema("PageRange",
	uintField(1, "addr", func(r *PageRange) *uint64 { return &r.Addr }),
	uintField(2, "len", func(r *PageRange) *uint64 { return &r.Len }),
)
