package klog

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordWriter keeps each Write call as one record, the way /dev/kmsg does.
type recordWriter struct{ records []string }

func (w *recordWriter) Write(p []byte) (int, error) {
	w.records = append(w.records, string(p))
	return len(p), nil
}

func TestWriterPrintf(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ident  string
		format string
		args   []any
		want   string
	}{
		{"plain", "ksu", "hello %d", []any{1}, "ksu: hello 1\n"},
		{"trailing newline", "ksu", "hello\n", nil, "ksu: hello\n"},
		{"no ident", "", "hello", nil, "hello\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewWriter(tt.ident, &buf).Printf(tt.format, tt.args...)
			if got := buf.String(); got != tt.want {
				t.Errorf("Printf(%q) wrote %q, want %q", tt.format, got, tt.want)
			}
		})
	}
}

func TestKmsgBeforeAndAfterAttach(t *testing.T) {
	var console bytes.Buffer
	kmsg := &recordWriter{}
	k := NewKmsg("ksu-init", &console)

	k.Printf("early %s", "line")
	k.Mark("KSU-STAGE mount done ms=%d", 3)
	if len(kmsg.records) != 0 {
		t.Fatalf("records before attach = %q, want none", kmsg.records)
	}
	k.AttachKernelLog(kmsg)
	k.Logf(LevelErr, "late")

	wantConsole := "ksu-init: early line\nKSU-STAGE mount done ms=3\nksu-init: late\n"
	if got := console.String(); got != wantConsole {
		t.Errorf("console = %q, want %q", got, wantConsole)
	}
	wantKmsg := []string{
		"<6>ksu-init: early line\n",
		"<5>ksu-init: KSU-STAGE mount done ms=3\n",
		"<3>ksu-init: late\n",
	}
	if diff := cmp.Diff(wantKmsg, kmsg.records); diff != "" {
		t.Errorf("kernel log records mismatch (-want +got):\n%s", diff)
	}
}

func TestKmsgPendingBound(t *testing.T) {
	k := NewKmsg("x", nil)
	for i := range maxPending + 3 {
		k.Printf("line %d", i)
	}
	kmsg := &recordWriter{}
	k.AttachKernelLog(kmsg)

	if got, want := len(kmsg.records), maxPending+1; got != want {
		t.Fatalf("records after attach = %d, want %d", got, want)
	}
	if got, want := kmsg.records[0], "<4>x: 3 early lines were dropped before the kernel log was open\n"; got != want {
		t.Errorf("first record = %q, want %q", got, want)
	}
	if got, want := kmsg.records[1], "<6>x: line 3\n"; got != want {
		t.Errorf("oldest kept record = %q, want %q", got, want)
	}
}

func TestKmsgSplitsRecords(t *testing.T) {
	kmsg := &recordWriter{}
	k := NewKmsg("x", nil)
	k.AttachKernelLog(kmsg)

	k.Printf("one\ntwo")
	long := strings.Repeat("a", maxRecord+10)
	k.Printf("%s", long)

	want := []string{
		"<6>x: one\n",
		"<6>x: two\n",
		"<6>x: " + long[:maxRecord] + "\n",
		"<6>x: " + long[maxRecord:] + "\n",
	}
	if diff := cmp.Diff(want, kmsg.records); diff != "" {
		t.Errorf("records mismatch (-want +got):\n%s", diff)
	}
}

func TestSplitRecord(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    string
		n    int
		want []string
	}{
		{"empty", "", 4, []string{""}},
		{"short", "abc", 4, []string{"abc"}},
		{"exact", "abcd", 4, []string{"abcd"}},
		{"two pieces", "abcdef", 4, []string{"abcd", "ef"}},
		{"keeps runes whole", "abcé", 4, []string{"abc", "é"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := splitRecord(tt.s, tt.n)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("splitRecord(%q, %d) mismatch (-want +got):\n%s", tt.s, tt.n, diff)
			}
		})
	}
}

func TestKmsgNoConsoleCopyWhenKernelEchoes(t *testing.T) {
	var console bytes.Buffer
	kmsg := &recordWriter{}
	k := NewKmsg("ksu-init", &console)
	k.AttachKernelLog(kmsg)
	k.SetConsoleLevel(parseConsoleLevel("7\t4\t1\t7\n"))

	k.Printf("shown by the kernel")
	k.Logf(LevelDebug, "below the console level")
	k.Mark("KSU-PHASE mount done ms=%d", 3)

	if got, want := console.String(), "ksu-init: below the console level\n"; got != want {
		t.Errorf("console = %q, want %q", got, want)
	}
	if got := len(kmsg.records); got != 3 {
		t.Errorf("kernel log has %d records, want 3: %q", got, kmsg.records)
	}
}

func TestParseConsoleLevel(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"7\t4\t1\t7\n", 7},
		{"4 4 1 7", 4},
		{"", 0},
		{"x 4 1 7", 0},
	} {
		if got := parseConsoleLevel(tt.in); got != tt.want {
			t.Errorf("parseConsoleLevel(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestKeptEchoed(t *testing.T) {
	for _, tt := range []struct {
		name         string
		levels       []int
		consoleLevel int
		want         bool
	}{
		{"nothing kept", nil, 7, false},
		{"info under level 7", []int{LevelInfo}, 7, true},
		{"debug only", []int{LevelDebug}, 7, false},
		{"quiet console", []int{LevelInfo, LevelNotice}, 4, false},
		{"warning on a quiet console", []int{LevelInfo, LevelWarning}, 5, true},
		{"level unknown", []int{LevelErr}, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := NewKmsg("ksu-init", io.Discard)
			for _, level := range tt.levels {
				k.Logf(level, "line")
			}
			if got := k.keptEchoed(tt.consoleLevel); got != tt.want {
				t.Errorf("keptEchoed(%d) with lines at %v = %v, want %v", tt.consoleLevel, tt.levels, got, tt.want)
			}
		})
	}
}
