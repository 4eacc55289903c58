package snapshot

import (
	"errors"
	"fmt"
	"strings"
)

// Classes of format errors. A *FormatError wraps one of them, so callers
// can test the class with errors.Is.
var (
	ErrTruncated = errors.New("truncated")
	ErrChecksum  = errors.New("checksum mismatch")
	ErrTooLarge  = errors.New("over limit")
	ErrInvalid   = errors.New("invalid")
)

// problem is an error with its own message that belongs to one of the
// classes above.
type problem struct {
	class error
	msg   string
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.class }

func errorf(class error, format string, args ...any) error {
	return &problem{class: class, msg: fmt.Sprintf(format, args...)}
}

// FormatError is a malformed snapshot: where the reader found the
// problem, and what it is.
type FormatError struct {
	Section int         // index of the section in the stream (Meta is 0), or -1 for the file header
	Type    SectionType // type of that section, 0 when its header was not read
	Offset  int64       // byte offset in the decompressed stream where the problem was found
	Err     error
}

func (e *FormatError) Error() string {
	if e.Section < 0 {
		return fmt.Sprintf("snapshot: file header, offset %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("snapshot: section %d (%v), offset %d: %v", e.Section, e.Type, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// VersionError is a snapshot or archive header whose version this
// package cannot read.
type VersionError struct {
	Format string // "snapshot" or "archive"
	Major  int
	Minor  int
	Want   int // the major version this package reads
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s format version %d.%d is not supported: this reader supports major version %d",
		e.Format, e.Major, e.Minor, e.Want)
}

// fieldError is a decoding error inside a record, with the path to the
// field and the offset where it was found.
type fieldError struct {
	path   string
	offset int64
	err    error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// inField prefixes err's field path with name, creating a fieldError at
// offset if err is not one yet.
func inField(name string, offset int64, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		sep := "."
		if strings.HasPrefix(fe.path, "[") {
			sep = ""
		}
		return &fieldError{path: name + sep + fe.path, offset: fe.offset, err: fe.err}
	}
	return &fieldError{path: name, offset: offset, err: err}
}
