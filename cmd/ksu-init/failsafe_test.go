package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ksu-project/ksu/pkg/snapshot"
)

func TestFindSnapshotMissingHeader(t *testing.T) {
	fsys := snapshotFS(t, "compressed snapshot bytes")
	delete(fsys, "ksu/"+snapshot.HeaderName)
	_, found, err := findSnapshot(fsys, "ksu")
	if !found {
		t.Errorf("findSnapshot(parts without header) found = false, want true")
	}
	if err == nil || !strings.Contains(err.Error(), snapshot.HeaderName+" is missing") {
		t.Errorf("findSnapshot(parts without header) = %v, want an error naming the missing %s", err, snapshot.HeaderName)
	}
}

func TestRestoredPIDsLeavesFailedTrees(t *testing.T) {
	for _, tt := range []struct {
		name string
		res  restoreResult
		want []int32
	}{
		{"no failure", restoreResult{PIDs: []int32{10, 11, 20}}, []int32{10, 11, 20}},
		{"one tree failed", restoreResult{PIDs: []int32{10, 11, 20, 21}, Failed: []failure{{Root: 20, PIDs: []int32{20, 21}}}},
			[]int32{10, 11}},
		{"every tree failed", restoreResult{PIDs: []int32{10, 20}, Failed: []failure{{Root: 10, PIDs: []int32{10}}, {Root: 20, PIDs: []int32{20}}}},
			nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := restoredPIDs(tt.res)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("restoredPIDs(%+v) mismatch (-want +got):\n%s", tt.res, diff)
			}
		})
	}
}
