package snapshot

import (
	"os"
	"strings"
	"testing"
)

// describer is a schema of any record type.
type describer interface{ describe() string }

// allSchemas lists every record schema in the order doc.go documents
// them.
var allSchemas = []describer{
	metaSchema, linkSchema, addrSchema, routeSchema, endSchema,
	processSchema, threadSchema, regsSchema, rseqSchema, robustListSchema, sigAltStackSchema, syscallSchema,
	sigactionSchema, siginfoSchema, itimerSchema, posixTimerSchema, fdSchema, identitySchema, rlimitSchema,
	mmSchema, vmaSchema, fileRefSchema, sharedMemorySchema, pagesSchema, pageRangeSchema,
	fileSchema, pipeSchema, pipePacketSchema, eventFDSchema, epollSchema, epollTargetSchema, timerFDSchema, signalFDSchema,
	socketSchema, sockOptSchema, socketMessageSchema, pathEntrySchema, tcpRepairSchema,
}

// docBlocks returns the preformatted blocks of doc.go's comment, with
// the comment markers and the block indentation removed.
func docText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimPrefix(line, "//")
		line = strings.TrimPrefix(line, "\t")
		sb.WriteString(line + "\n")
	}
	return sb.String()
}

// TestDocListsEveryField keeps the field tables in doc.go in step with
// the schemas: a field added, renumbered or retyped in one place fails
// here until the other matches.
func TestDocListsEveryField(t *testing.T) {
	doc := docText(t)
	for _, s := range allSchemas {
		if want := s.describe(); !strings.Contains(doc, want) {
			t.Errorf("doc.go does not contain this field table, or not verbatim:\n%s", want)
		}
	}
}
