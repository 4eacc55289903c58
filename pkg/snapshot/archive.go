package snapshot

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Archive constants. A compressed snapshot travels to the new kernel as
// files of a newc cpio archive in the initramfs: a header file and one or
// more numbered parts whose concatenation is the zstd stream.
const (
	// ArchiveMagic starts the archive header file.
	ArchiveMagic = "KSUARCH\x00"
	// ArchiveVersion is the archive header's layout version. Readers
	// reject any other version.
	ArchiveVersion = 1
	// HeaderName is the archive header's file name in the archive's
	// directory.
	HeaderName = "snapshot.hdr"
	// MaxPartSize is the largest file a newc header can describe: its
	// size field is 8 hexadecimal digits.
	MaxPartSize = 1<<32 - 1
	// DefaultPartSize is the part size WriteCPIO and NewCPIOWriter use
	// when none is given. It keeps every size below 2^31, a precaution
	// for unpackers that keep sizes in signed 32-bit integers.
	DefaultPartSize = 1 << 30

	maxParts            = 1000 // part names have three digits
	maxReleaseLen       = 64   // struct utsname's release field, without its NUL
	archiveFixedSize    = 44
	maxArchiveHeaderLen = archiveFixedSize + maxReleaseLen + checksumSize
)

// ArchiveHeader describes a compressed snapshot stored as parts of a cpio
// archive. It is stored, encoded, in the file HeaderName.
type ArchiveHeader struct {
	Version        uint16 // ArchiveVersion; the writer sets it
	KernelRelease  string // release of the kernel that took the snapshot, at most 64 bytes
	Size           uint64 // decompressed length of the snapshot stream (Writer.Size)
	CompressedSize uint64 // length of the payload, the parts' total length
	Checksum       uint32 // CRC-32C of the payload; the writer sets it
	PartSize       uint64 // length of every part but the last, which may be shorter
	Parts          uint32 // number of parts; the writer sets it
}

// PartName returns the file name of part i, such as "snapshot.000".
func PartName(i int) string { return fmt.Sprintf("snapshot.%03d", i) }

// partCount returns how many parts a payload of n bytes takes: at least
// one, so that an empty payload still has a part.
func partCount(n, partSize uint64) uint64 {
	return max(1, (n+partSize-1)/partSize)
}

// partLen returns the length of part i.
func (h *ArchiveHeader) partLen(i int) uint64 {
	if uint64(i) < uint64(h.Parts)-1 {
		return h.PartSize
	}
	return h.CompressedSize - h.PartSize*(uint64(h.Parts)-1)
}

// validate checks the fields that writer and reader both rely on.
func (h *ArchiveHeader) validate() error {
	switch {
	case len(h.KernelRelease) > maxReleaseLen:
		return errorf(ErrInvalid, "kernel release is %d bytes, limit %d", len(h.KernelRelease), maxReleaseLen)
	case h.PartSize == 0 || h.PartSize > MaxPartSize:
		return errorf(ErrInvalid, "part size %d is outside 1 to %d", h.PartSize, uint64(MaxPartSize))
	case h.CompressedSize > maxParts*h.PartSize:
		return errorf(ErrTooLarge, "payload of %d bytes needs more than %d parts of %d bytes", h.CompressedSize, maxParts, h.PartSize)
	case uint64(h.Parts) != partCount(h.CompressedSize, h.PartSize):
		return errorf(ErrInvalid, "%d parts, want %d for %d bytes in parts of %d", h.Parts,
			partCount(h.CompressedSize, h.PartSize), h.CompressedSize, h.PartSize)
	}
	return nil
}

// MarshalBinary encodes the header in the layout doc.go describes.
func (h *ArchiveHeader) MarshalBinary() ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, archiveFixedSize, maxArchiveHeaderLen)
	copy(b, ArchiveMagic)
	le := binary.LittleEndian
	le.PutUint16(b[8:], h.Version)
	le.PutUint16(b[10:], uint16(len(h.KernelRelease)))
	le.PutUint64(b[12:], h.Size)
	le.PutUint64(b[20:], h.CompressedSize)
	le.PutUint64(b[28:], h.PartSize)
	le.PutUint32(b[36:], h.Parts)
	le.PutUint32(b[40:], h.Checksum)
	b = append(b, h.KernelRelease...)
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary decodes and validates a header. An unknown version is
// a *VersionError.
func (h *ArchiveHeader) UnmarshalBinary(b []byte) error {
	le := binary.LittleEndian
	if len(b) < 10 || string(b[:8]) != ArchiveMagic {
		return errorf(ErrInvalid, "not a ksu archive header: it does not start with %q", ArchiveMagic)
	}
	if v := le.Uint16(b[8:]); v != ArchiveVersion {
		return &VersionError{Format: "archive", Major: int(v), Want: ArchiveVersion}
	}
	if len(b) < archiveFixedSize+checksumSize {
		return errorf(ErrTruncated, "archive header is %d bytes, want at least %d", len(b), archiveFixedSize+checksumSize)
	}
	n := int(le.Uint16(b[10:]))
	if n > maxReleaseLen {
		return errorf(ErrInvalid, "kernel release is %d bytes, limit %d", n, maxReleaseLen)
	}
	if want := archiveFixedSize + n + checksumSize; len(b) != want {
		return errorf(ErrInvalid, "archive header is %d bytes, want %d", len(b), want)
	}
	body := b[:archiveFixedSize+n]
	if got, stored := crc32.Checksum(body, castagnoli), le.Uint32(b[len(body):]); got != stored {
		return errorf(ErrChecksum, "archive header CRC-32C is %08x, stored %08x", got, stored)
	}
	*h = ArchiveHeader{
		Version:        ArchiveVersion,
		Size:           le.Uint64(b[12:]),
		CompressedSize: le.Uint64(b[20:]),
		PartSize:       le.Uint64(b[28:]),
		Parts:          le.Uint32(b[36:]),
		Checksum:       le.Uint32(b[40:]),
		KernelRelease:  string(b[archiveFixedSize : archiveFixedSize+n]),
	}
	return h.validate()
}
