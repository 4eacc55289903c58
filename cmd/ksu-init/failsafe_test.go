package main

import (
	"strings"
	"testing"

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
