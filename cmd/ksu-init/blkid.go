package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// fsInfo identifies the filesystem on a block device, as blkid would.
type fsInfo struct {
	fsType string
	uuid   string // lower-case 8-4-4-4-12 hex
	label  string
}

// superblock describes where one filesystem type keeps its magic number,
// UUID and label, as byte offsets from the start of the device.
type superblock struct {
	fsType      string
	magicOffset int64
	magic       []byte
	uuidOffset  int64
	labelOffset int64
	labelLen    int
}

// superblocks are the filesystems ksu-init can find by UUID= or LABEL=.
// Offsets come from each filesystem's on-disk format: ext2/3/4's superblock
// starts at 1024 (s_magic 0x38, s_uuid 0x68, s_volume_name 0x78), XFS's at 0
// (sb_uuid 32, sb_fname 108), btrfs's at 64 KiB (fsid 0x20, magic 0x40,
// label 0x12b).
var superblocks = []superblock{
	{"ext4", 1024 + 0x38, []byte{0x53, 0xef}, 1024 + 0x68, 1024 + 0x78, 16},
	{"xfs", 0, []byte("XFSB"), 32, 108, 12},
	{"btrfs", 0x10000 + 0x40, []byte("_BHRfS_M"), 0x10000 + 0x20, 0x10000 + 0x12b, 256},
}

// probeFS identifies the filesystem that r (a block device) holds. It
// returns false when no known superblock is found. ext2 and ext3 are
// reported as ext4, whose driver mounts all three.
func probeFS(r io.ReaderAt) (fsInfo, bool) {
	for _, sb := range superblocks {
		magic := make([]byte, len(sb.magic))
		if _, err := r.ReadAt(magic, sb.magicOffset); err != nil || !bytes.Equal(magic, sb.magic) {
			continue
		}
		uuid := make([]byte, 16)
		label := make([]byte, sb.labelLen)
		if _, err := r.ReadAt(uuid, sb.uuidOffset); err != nil {
			continue
		}
		if _, err := r.ReadAt(label, sb.labelOffset); err != nil {
			continue
		}
		return fsInfo{fsType: sb.fsType, uuid: formatUUID(uuid), label: cString(label)}, true
	}
	return fsInfo{}, false
}

// formatUUID formats 16 bytes in their stored order as 8-4-4-4-12 hex,
// the way filesystems UUIDs are printed.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// formatGUID formats a GPT GUID, whose first three fields are stored
// little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// cString returns b up to its first NUL byte.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// GPT header fields (UEFI specification, "GPT Header"), as byte offsets in
// the header at logical block 1.
const (
	gptEntriesLBAOffset = 72
	gptNumEntriesOffset = 80
	gptEntrySizeOffset  = 84
	// gptMaxEntries bounds the entry array read from a corrupt header.
	gptMaxEntries = 1024
)

// partUUIDs returns the PARTUUID of each partition of a disk, keyed by the
// partition number the kernel gives it. On a GPT disk it is the unique
// partition GUID of entry number-1; on an MBR disk it is
// "SSSSSSSS-NN", the disk signature and the partition number in hex,
// which covers logical partitions too. A disk with neither table gives
// nil.
//
// Limitation: the GPT header's CRC and the backup header are not checked,
// so a disk whose primary GPT is corrupt but whose backup is intact (which
// the kernel would use) is not recognized. It matters only for
// root=PARTUUID= on a damaged disk; checking the CRCs and reading the
// backup header at the last block would lift it.
func partUUIDs(r io.ReaderAt, sectorSize int64, numbers []int) (map[int]string, error) {
	if ids, ok, err := gptPartUUIDs(r, sectorSize); ok || err != nil {
		return ids, err
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, nil
	}
	sig := binary.LittleEndian.Uint32(mbr[440:444])
	ids := make(map[int]string)
	for _, n := range numbers {
		ids[n] = fmt.Sprintf("%08x-%02x", sig, n)
	}
	return ids, nil
}

// gptPartUUIDs reads a GPT. ok is false when the disk has no GPT header.
func gptPartUUIDs(r io.ReaderAt, sectorSize int64) (ids map[int]string, ok bool, err error) {
	hdr := make([]byte, 92)
	if _, err := r.ReadAt(hdr, sectorSize); err != nil || string(hdr[:8]) != "EFI PART" {
		return nil, false, nil
	}
	entriesLBA := int64(binary.LittleEndian.Uint64(hdr[gptEntriesLBAOffset:]))
	count := binary.LittleEndian.Uint32(hdr[gptNumEntriesOffset:])
	size := binary.LittleEndian.Uint32(hdr[gptEntrySizeOffset:])
	if count > gptMaxEntries || size < 128 || size > 4096 {
		return nil, true, fmt.Errorf("read GPT: invalid header (%d entries of %d bytes)", count, size)
	}
	table := make([]byte, int(count)*int(size))
	if _, err := r.ReadAt(table, entriesLBA*sectorSize); err != nil {
		return nil, true, fmt.Errorf("read GPT entries at block %d: %w", entriesLBA, err)
	}
	ids = make(map[int]string)
	for i := 0; i < int(count); i++ {
		e := table[i*int(size):]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue // unused entry: all-zero partition type
		}
		ids[i+1] = formatGUID(e[16:32])
	}
	return ids, true, nil
}

// equalID compares UUIDs and PARTUUIDs the way the kernel and blkid do:
// case-insensitively.
func equalID(a, b string) bool {
	return strings.EqualFold(a, b)
}
