package snapshot

import (
	"fmt"
	"time"
)

// File is an open file description: what one or more file descriptors,
// in one or more processes, refer to. Processes name it by ID in their FD
// tables. Of the kind-specific fields, only the one for Kind is set.
//
// Limitation: there are no fields yet for file locks (flock, POSIX
// locks), F_SETOWN owners, or inotify and fanotify instances, so a
// snapshot cannot preserve files that use them. Adding fields is a minor
// version change that older readers skip.
type File struct {
	ID    uint64 // snapshot-wide identity, never 0
	Kind  FileKind
	Flags uint32  // access mode and status flags as F_GETFL returns them (O_RDWR, O_APPEND, O_NONBLOCK ...)
	Pos   int64   // file position
	Ref   FileRef // path and identity, for kinds that have a path

	PipeID   uint64 // Pipe.ID, for FilePipe and FileFIFO
	ShmID    uint64 // SharedMemory.ID, for FileMemfd
	EventFD  *EventFD
	Epoll    *Epoll
	TimerFD  *TimerFD
	SignalFD *SignalFD
	Socket   *Socket
}

// FileKind is the kind of an open file description.
type FileKind uint8

// File kinds. 0 is not a kind, so a File whose Kind is missing is caught.
const (
	FileRegular FileKind = iota + 1
	FileDirectory
	FileCharDevice
	FilePipe
	FileFIFO
	FileEventFD
	FileEpoll
	FileTimerFD
	FileSignalFD
	FileMemfd
	FileUnixSocket
	FileTCPSocket
	FileUDPSocket
)

var fileKindNames = [...]string{
	FileRegular:    "regular",
	FileDirectory:  "directory",
	FileCharDevice: "chardev",
	FilePipe:       "pipe",
	FileFIFO:       "fifo",
	FileEventFD:    "eventfd",
	FileEpoll:      "epoll",
	FileTimerFD:    "timerfd",
	FileSignalFD:   "signalfd",
	FileMemfd:      "memfd",
	FileUnixSocket: "unix",
	FileTCPSocket:  "tcp",
	FileUDPSocket:  "udp",
}

// String returns the kind's name.
func (k FileKind) String() string {
	if int(k) < len(fileKindNames) && fileKindNames[k] != "" {
		return fileKindNames[k]
	}
	return fmt.Sprintf("file(%d)", uint8(k))
}

// Pipe is a pipe or FIFO buffer with the data written to it and not yet
// read. Both ends refer to it by ID.
type Pipe struct {
	ID       uint64 // snapshot-wide identity, never 0
	Capacity uint32 // F_GETPIPE_SZ
	Data     []byte // unread data, oldest first
	// Packets are the packet-mode buffers within Data, in order. The
	// bytes of Data outside them are ordinary stream data.
	Packets []PipePacket
}

// PipePacket is one packet-mode buffer of a pipe, filled by a write
// through an O_DIRECT (packet-mode) write end and at most a page long. A
// read(2) that reaches it returns no data after it and discards what of
// it did not fit into the read's buffer.
type PipePacket struct {
	Offset uint32 // start in Pipe.Data
	Len    uint32 // bytes, at least 1
}

// EventFD is the state of an eventfd(2).
type EventFD struct {
	Count     uint64
	Semaphore bool // EFD_SEMAPHORE
}

// Epoll is an epoll instance with its interest list.
type Epoll struct {
	Targets []EpollTarget
}

// EpollTarget is one entry of an epoll interest list. The kernel keys an
// entry by the open file description and the descriptor number it was
// added with, so the snapshot records both.
type EpollTarget struct {
	FD     int32  // descriptor number passed to EPOLL_CTL_ADD
	File   uint64 // File.ID of the target
	Events uint32 // event mask, EPOLLET and EPOLLONESHOT included
	Data   uint64 // epoll_data returned with events
}

// TimerFD is the state of a timerfd_create(2) timer.
type TimerFD struct {
	Clock    int32 // clock id
	Flags    int32 // timerfd_settime flags (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET)
	Interval time.Duration
	Value    time.Duration // time left until the next expiry, 0 when disarmed
	Ticks    uint64        // expirations not yet read
	// Deadline is the wall-clock time of the next expiry of a
	// TFD_TIMER_ABSTIME timer on CLOCK_REALTIME or CLOCK_REALTIME_ALARM,
	// which the restore keeps; zero for other timers.
	Deadline time.Time
}

// SignalFD is the state of a signalfd(2).
type SignalFD struct {
	Mask uint64 // signals it accepts, bit N-1 for signal N
}

// Socket is the state of a socket: its addresses, options and queued
// data. TCP sockets also carry their repair state.
type Socket struct {
	Family   int32 // AF_UNIX, AF_INET, AF_INET6
	Type     int32 // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	Protocol int32
	State    uint32 // sk_state: TCP_ESTABLISHED, TCP_LISTEN ... (the kernel uses the TCP numbers for all families)
	Local    []byte // struct sockaddr as getsockname returns it
	Remote   []byte // struct sockaddr as getpeername returns it
	Backlog  int32  // listen backlog
	Shutdown uint32 // directions shut down: 1 for reading, 2 for writing
	Peer     uint64 // File.ID of the connected Unix socket, 0 when it is not in the snapshot
	Options  []SockOpt
	Recv     []SocketMessage // receive queue, oldest first
	Send     []SocketMessage // send queue, oldest first
	TCP      *TCPRepair
	// Pending lists the File.IDs of the connections that wait in a
	// listening Unix socket's accept queue, oldest first. Those Files
	// are the server ends that accept would return; no descriptor
	// refers to them, and their Peer is the connecting socket.
	Pending []uint64
}

// SockOpt is a socket option as getsockopt returns it.
type SockOpt struct {
	Level int32
	Name  int32
	Value []byte
}

// SocketMessage is queued socket data. For a stream socket, message
// boundaries carry no meaning except where file descriptors travel with
// the data.
type SocketMessage struct {
	Data  []byte
	Addr  []byte   // sender address, for datagrams
	Files []uint64 // File.IDs of descriptors in flight (SCM_RIGHTS)
}

// TCPRepair is the TCP state that the TCP_REPAIR socket options read on
// the old kernel and set on the new one.
type TCPRepair struct {
	SendSeq    uint32 // TCP_QUEUE_SEQ of the send queue
	RecvSeq    uint32 // TCP_QUEUE_SEQ of the receive queue
	Unsent     uint32 // bytes at the end of the send queue not yet sent (SIOCOUTQNSD)
	MSS        uint32 // TCPOPT_MAXSEG
	SendWScale uint8  // TCPOPT_WINDOW, our shift
	RecvWScale uint8  // TCPOPT_WINDOW, the peer's shift
	Timestamp  uint32 // TCP_TIMESTAMP

	SACK          bool // SACK permitted on this connection
	Timestamps    bool // TCP timestamps negotiated
	WindowScaling bool // window scaling negotiated

	SndWl1    uint32 // struct tcp_repair_window (TCP_REPAIR_WINDOW)
	SndWnd    uint32
	MaxWindow uint32
	RcvWnd    uint32
	RcvWup    uint32
}
