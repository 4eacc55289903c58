package snapshot

import "time"

// Field tables of the open file description, pipe and socket records.

var fileSchema = newSchema("File",
	uintField(1, "id", func(f *File) *uint64 { return &f.ID }),
	uintField(2, "kind", func(f *File) *FileKind { return &f.Kind }),
	uintField(3, "flags", func(f *File) *uint32 { return &f.Flags }),
	intField(4, "pos", func(f *File) *int64 { return &f.Pos }),
	recordField(5, "ref", func(f *File) *FileRef { return &f.Ref }, fileRefSchema),
	uintField(6, "pipe_id", func(f *File) *uint64 { return &f.PipeID }),
	uintField(7, "shm_id", func(f *File) *uint64 { return &f.ShmID }),
	optionalField(8, "eventfd", func(f *File) **EventFD { return &f.EventFD }, eventFDSchema),
	optionalField(9, "epoll", func(f *File) **Epoll { return &f.Epoll }, epollSchema),
	optionalField(10, "timerfd", func(f *File) **TimerFD { return &f.TimerFD }, timerFDSchema),
	optionalField(11, "signalfd", func(f *File) **SignalFD { return &f.SignalFD }, signalFDSchema),
	optionalField(12, "socket", func(f *File) **Socket { return &f.Socket }, socketSchema),
)

var pipeSchema = newSchema("Pipe",
	uintField(1, "id", func(p *Pipe) *uint64 { return &p.ID }),
	uintField(2, "capacity", func(p *Pipe) *uint32 { return &p.Capacity }),
	bytesField(3, "data", func(p *Pipe) *[]byte { return &p.Data }),
	repeatedField(4, "packets", func(p *Pipe) *[]PipePacket { return &p.Packets }, pipePacketSchema, maxPipePackets),
)

var pipePacketSchema = newSchema("PipePacket",
	uintField(1, "offset", func(p *PipePacket) *uint32 { return &p.Offset }),
	uintField(2, "len", func(p *PipePacket) *uint32 { return &p.Len }),
)

var eventFDSchema = newSchema("EventFD",
	uintField(1, "count", func(e *EventFD) *uint64 { return &e.Count }),
	boolField(2, "semaphore", func(e *EventFD) *bool { return &e.Semaphore }),
)

var epollSchema = newSchema("Epoll",
	repeatedField(1, "targets", func(e *Epoll) *[]EpollTarget { return &e.Targets }, epollTargetSchema, maxEpollTargets),
)

var epollTargetSchema = newSchema("EpollTarget",
	intField(1, "fd", func(t *EpollTarget) *int32 { return &t.FD }),
	uintField(2, "file", func(t *EpollTarget) *uint64 { return &t.File }),
	uintField(3, "events", func(t *EpollTarget) *uint32 { return &t.Events }),
	uintField(4, "data", func(t *EpollTarget) *uint64 { return &t.Data }),
)

var timerFDSchema = newSchema("TimerFD",
	intField(1, "clock", func(t *TimerFD) *int32 { return &t.Clock }),
	intField(2, "flags", func(t *TimerFD) *int32 { return &t.Flags }),
	durationField(3, "interval", func(t *TimerFD) *time.Duration { return &t.Interval }),
	durationField(4, "value", func(t *TimerFD) *time.Duration { return &t.Value }),
	uintField(5, "ticks", func(t *TimerFD) *uint64 { return &t.Ticks }),
	timeField(6, "deadline", func(t *TimerFD) *time.Time { return &t.Deadline }),
)

var signalFDSchema = newSchema("SignalFD",
	uintField(1, "mask", func(s *SignalFD) *uint64 { return &s.Mask }),
)

var socketSchema = newSchema("Socket",
	intField(1, "family", func(s *Socket) *int32 { return &s.Family }),
	intField(2, "type", func(s *Socket) *int32 { return &s.Type }),
	intField(3, "protocol", func(s *Socket) *int32 { return &s.Protocol }),
	uintField(4, "state", func(s *Socket) *uint32 { return &s.State }),
	bytesField(5, "local", func(s *Socket) *[]byte { return &s.Local }),
	bytesField(6, "remote", func(s *Socket) *[]byte { return &s.Remote }),
	intField(7, "backlog", func(s *Socket) *int32 { return &s.Backlog }),
	uintField(8, "shutdown", func(s *Socket) *uint32 { return &s.Shutdown }),
	uintField(9, "peer", func(s *Socket) *uint64 { return &s.Peer }),
	repeatedField(10, "options", func(s *Socket) *[]SockOpt { return &s.Options }, sockOptSchema, maxSockOpts),
	repeatedField(11, "recv", func(s *Socket) *[]SocketMessage { return &s.Recv }, socketMessageSchema, maxMessages),
	repeatedField(12, "send", func(s *Socket) *[]SocketMessage { return &s.Send }, socketMessageSchema, maxMessages),
	optionalField(13, "tcp", func(s *Socket) **TCPRepair { return &s.TCP }, tcpRepairSchema),
	packedField(14, "pending", func(s *Socket) *[]uint64 { return &s.Pending }, maxPendingConns),
)

var sockOptSchema = newSchema("SockOpt",
	intField(1, "level", func(o *SockOpt) *int32 { return &o.Level }),
	intField(2, "name", func(o *SockOpt) *int32 { return &o.Name }),
	bytesField(3, "value", func(o *SockOpt) *[]byte { return &o.Value }),
)

var socketMessageSchema = newSchema("SocketMessage",
	bytesField(1, "data", func(m *SocketMessage) *[]byte { return &m.Data }),
	bytesField(2, "addr", func(m *SocketMessage) *[]byte { return &m.Addr }),
	packedField(3, "files", func(m *SocketMessage) *[]uint64 { return &m.Files }, maxMessageFiles),
)

var tcpRepairSchema = newSchema("TCPRepair",
	uintField(1, "send_seq", func(t *TCPRepair) *uint32 { return &t.SendSeq }),
	uintField(2, "recv_seq", func(t *TCPRepair) *uint32 { return &t.RecvSeq }),
	uintField(3, "unsent", func(t *TCPRepair) *uint32 { return &t.Unsent }),
	uintField(4, "mss", func(t *TCPRepair) *uint32 { return &t.MSS }),
	uintField(5, "send_wscale", func(t *TCPRepair) *uint8 { return &t.SendWScale }),
	uintField(6, "recv_wscale", func(t *TCPRepair) *uint8 { return &t.RecvWScale }),
	uintField(7, "timestamp", func(t *TCPRepair) *uint32 { return &t.Timestamp }),
	boolField(8, "sack", func(t *TCPRepair) *bool { return &t.SACK }),
	boolField(9, "timestamps", func(t *TCPRepair) *bool { return &t.Timestamps }),
	boolField(10, "window_scaling", func(t *TCPRepair) *bool { return &t.WindowScaling }),
	uintField(11, "snd_wl1", func(t *TCPRepair) *uint32 { return &t.SndWl1 }),
	uintField(12, "snd_wnd", func(t *TCPRepair) *uint32 { return &t.SndWnd }),
	uintField(13, "max_window", func(t *TCPRepair) *uint32 { return &t.MaxWindow }),
	uintField(14, "rcv_wnd", func(t *TCPRepair) *uint32 { return &t.RcvWnd }),
	uintField(15, "rcv_wup", func(t *TCPRepair) *uint32 { return &t.RcvWup }),
)
