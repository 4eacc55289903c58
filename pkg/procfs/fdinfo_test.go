package procfs

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadFDInfo(t *testing.T) {
	for _, tt := range []struct {
		name string
		fd   int
		want FDInfo
	}{
		{"eventfd", 5, FDInfo{Flags: 0o2004002, MntID: 17, Ino: 1038, Eventfd: &EventfdInfo{Count: 5, SemaphoreShown: true}}},
		{"armed timerfd", 8, FDInfo{Flags: 0o4002, MntID: 17, Ino: 1038, Timerfd: &TimerfdInfo{
			ClockID: 1, Value: Timespec{99, 980211145}, Interval: Timespec{2, 500000000},
		}}},
		{"idle timerfd", 9, FDInfo{Flags: 0o2, MntID: 17, Ino: 1038, Timerfd: &TimerfdInfo{}}},
		{"signalfd", 11, FDInfo{Flags: 0o2000002, MntID: 17, Ino: 1038, Signalfd: &SignalfdInfo{Sigmask: 0x201}}},
		{"epoll", 12, FDInfo{Flags: 0o2, MntID: 17, Ino: 1038, Epoll: []EpollTarget{
			{FD: 5, Events: 0x80000019, Data: 5, Ino: 0x40e, Dev: 0x10},
			{FD: 11, Events: 0x1d, Data: 0x1234, Ino: 0x40e, Dev: 0x10},
		}}},
		{"pipe", 14, FDInfo{Flags: 0o4000, MntID: 16, Ino: 71171}},
		{"locked file", 16, FDInfo{Pos: 3, Flags: 0o2102002, MntID: 46, Ino: 9999233,
			Locks: []string{"1: FLOCK  ADVISORY  WRITE 15661 fe:00:9999233 0 EOF"}}},
		{"memfd", 17, FDInfo{Flags: 0o100002, Ino: 1035}},
		{"pidfd", 18, FDInfo{Flags: 0o2000002, MntID: 4, Ino: 48116, Pidfd: &PidfdInfo{Pid: testPid, NSpid: []int{testPid}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFDInfo(testRoot, testPid, tt.fd)
			if err != nil {
				t.Fatalf("ReadFDInfo(%d, %d) = %v, want nil error", testPid, tt.fd, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ReadFDInfo(%d, %d) mismatch (-want +got):\n%s", testPid, tt.fd, diff)
			}
		})
	}
}

func TestReadFDInfoInotify(t *testing.T) {
	_, err := ReadFDInfo(testRoot, testPid, 13)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("ReadFDInfo(%d, 13) on inotify = %v, want errors.ErrUnsupported", testPid, err)
	}
}

func TestParseFDInfo(t *testing.T) {
	for _, tt := range []struct {
		name string
		data string
		want FDInfo
	}{
		{
			// Linux 6.1 prints no ino line for an eventfd in
			// semaphore mode.
			"semaphore eventfd",
			"pos:\t0\nflags:\t02\nmnt_id:\t15\neventfd-count:                0\neventfd-id: 3\neventfd-semaphore: 1\n",
			FDInfo{Flags: 0o2, MntID: 15, Eventfd: &EventfdInfo{Semaphore: true, SemaphoreShown: true}},
		},
		{
			"absolute timerfd with expirations",
			"pos:\t0\nflags:\t02\nmnt_id:\t15\nclockid: 0\nticks: 3\nsettime flags: 01\nit_value: (0, 250)\nit_interval: (1, 0)\n",
			FDInfo{Flags: 0o2, MntID: 15, Timerfd: &TimerfdInfo{Ticks: 3, SettimeFlags: 1, Value: Timespec{0, 250}, Interval: Timespec{1, 0}}},
		},
		{
			"reaped pidfd",
			"pos:\t0\nflags:\t02000002\nmnt_id:\t15\nPid:\t-1\n",
			FDInfo{Flags: 0o2000002, MntID: 15, Pidfd: &PidfdInfo{Pid: -1}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFDInfo(strings.NewReader(tt.data))
			if err != nil {
				t.Fatalf("ParseFDInfo(%q) = %v, want nil error", tt.data, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFDInfo(%q) mismatch (-want +got):\n%s", tt.data, diff)
			}
		})
	}
}

func TestParseFDInfoInvalid(t *testing.T) {
	for _, data := range []string{
		"pos 0\n",
		"flags:\t09\n",
		"it_value: 1, 2\n",
		"tfd:        5 events: zz data: 5  pos:0 ino:40e sdev:10\n",
		"fanotify flags:10 event-flags:0\n",
	} {
		if got, err := ParseFDInfo(strings.NewReader(data)); err == nil {
			t.Errorf("ParseFDInfo(%q) = %+v, want an error", data, got)
		}
	}
}

func FuzzParseFDInfo(f *testing.F) {
	f.Add("pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\ntfd:        5 events: 80000019 data:                5  pos:0 ino:40e sdev:10\n")
	f.Add("clockid: 1\nticks: 0\nsettime flags: 00\nit_value: (99, 972993794)\nit_interval: (2, 500000000)\n")
	f.Add("eventfd-count:                5\nsigmask:\t0000000000000201\nPid:\t1\nNSpid:\t1\t2\nlock:\t1: FLOCK\n")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = ParseFDInfo(strings.NewReader(data))
	})
}
