package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/ksu-project/ksu/pkg/dump"
	"github.com/ksu-project/ksu/pkg/klog"
)

func TestDumpRetrying(t *testing.T) {
	pending := &dump.RejectError{PID: 7, Object: "fd 3", Kind: "tcp listener", Reason: "1 connection waits", Transient: true}
	unsupported := &dump.RejectError{PID: 7, Object: "fd 4", Kind: "socket", Reason: "not supported yet"}
	for _, tt := range []struct {
		name      string
		errs      []error // what each dump returns, in turn
		wrote     bool    // whether the failed dumps wrote to the snapshot
		wantCalls int
		wantErr   error
	}{
		{"success at once", []error{nil}, false, 1, nil},
		{"pending then success", []error{pending, pending, nil}, false, 3, nil},
		{"pending every time", []error{pending, pending, pending, nil}, false, maxDumpTries, pending},
		{"not transient", []error{unsupported, nil}, false, 1, unsupported},
		{"after a write", []error{pending, nil}, true, 1, pending},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fw := &failpointWriter{w: io.Discard, name: "freeze", checked: tt.wrote}
			log := &switchLog{stderr: klog.Stderr("ksu"), kernel: klog.NewKmsg("ksu", io.Discard)}
			calls := 0
			dumpOnce := func() (dump.Stats, error) {
				err := tt.errs[calls]
				calls++
				return dump.Stats{}, err
			}

			_, err := dumpRetrying(dumpOnce, fw, log)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("dumpRetrying() = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.wantCalls {
				t.Errorf("dumpRetrying() dumped %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestCheckDumpRootsRejectsInit(t *testing.T) {
	err := checkDumpRoots([]int{1})
	if err == nil || !strings.Contains(err.Error(), "process 1: init") {
		t.Errorf("checkDumpRoots([1]) = %v, want an error naming init", err)
	}
}
