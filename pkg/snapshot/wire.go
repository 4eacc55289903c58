package snapshot

import "encoding/binary"

// wireType is the low three bits of a field key: how the value that
// follows the key is encoded.
type wireType uint8

const (
	wireVarint wireType = 0 // one unsigned LEB128 varint
	wireBytes  wireType = 2 // a varint length, then that many bytes
)

// maxFieldNumber is the largest field number a key may carry. Records of
// this version use 1 to maxKnownField; readers skip larger numbers.
const (
	maxFieldNumber = 1<<29 - 1
	maxKnownField  = 63
)

// encoder appends fields to a record.
type encoder struct {
	buf []byte
	err error // first value the encoding cannot represent
}

func (e *encoder) key(num uint32, wt wireType) {
	e.buf = binary.AppendUvarint(e.buf, uint64(num)<<3|uint64(wt))
}

// uvarint appends a varint field, or nothing for 0.
func (e *encoder) uvarint(num uint32, v uint64) {
	if v == 0 {
		return
	}
	e.key(num, wireVarint)
	e.buf = binary.AppendUvarint(e.buf, v)
}

// bytes appends a length-delimited field, or nothing for an empty value.
func (e *encoder) bytes(num uint32, b []byte) {
	if len(b) == 0 {
		return
	}
	e.key(num, wireBytes)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

// nested appends a length-delimited field whose content body appends.
// An empty body is dropped unless keepEmpty is set, which a present but
// zero optional record needs.
func (e *encoder) nested(num uint32, keepEmpty bool, body func(*encoder)) {
	mark := len(e.buf)
	e.key(num, wireBytes)
	start := len(e.buf)
	body(e)
	n := len(e.buf) - start
	if n == 0 && !keepEmpty {
		e.buf = e.buf[:mark]
		return
	}
	// The content went where its length belongs; move it up by the
	// length's size and put the length in front.
	var lenBuf [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(lenBuf[:], uint64(n))
	e.buf = append(e.buf, lenBuf[:l]...)
	copy(e.buf[start+l:], e.buf[start:start+n])
	copy(e.buf[start:], lenBuf[:l])
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// decoder reads the fields of one record from a byte slice. base is the
// stream offset of buf[0], which errors report.
type decoder struct {
	buf  []byte
	pos  int
	base int64
	// budget is shared by a record and the records nested in it: the
	// bytes of list elements that decoding may still allocate.
	budget *int64
}

func (d *decoder) offset() int64 { return d.base + int64(d.pos) }

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.buf[d.pos:])
	switch {
	case n == 0:
		return 0, errorf(ErrTruncated, "varint cut off by the end of the record")
	case n < 0:
		return 0, errorf(ErrInvalid, "varint longer than 64 bits")
	}
	d.pos += n
	return v, nil
}

// fieldValue is one decoded field: a number for wireVarint, bytes for
// wireBytes, with the stream offset of the value (of the bytes themselves,
// after their length).
type fieldValue struct {
	num    uint64
	wire   wireType
	u      uint64
	b      []byte
	offset int64
	budget *int64 // the decoder's budget, for nested records and lists
}

// next reads the next field of the record. On error, fv.num is the
// field's number, or 0 if the key could not be read, and fv.offset is the
// key's offset.
func (d *decoder) next() (fieldValue, error) {
	fv := fieldValue{offset: d.offset(), budget: d.budget}
	key, err := d.uvarint()
	if err != nil {
		return fv, err
	}
	fv.num, fv.wire = key>>3, wireType(key&7)
	if fv.num == 0 || fv.num > maxFieldNumber {
		return fv, errorf(ErrInvalid, "field number %d out of range", fv.num)
	}
	switch fv.wire {
	case wireVarint:
		fv.u, err = d.uvarint()
	case wireBytes:
		fv.b, err = d.lengthDelimited()
	default:
		err = errorf(ErrInvalid, "unknown wire type %d", fv.wire)
	}
	if err != nil {
		return fv, err
	}
	if fv.wire == wireBytes {
		fv.offset = d.offset() - int64(len(fv.b))
	} else {
		fv.offset = d.offset()
	}
	return fv, nil
}

func (d *decoder) lengthDelimited() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.buf)-d.pos) {
		return nil, errorf(ErrTruncated, "length %d runs past the record's end (%d bytes left)", n, len(d.buf)-d.pos)
	}
	b := d.buf[d.pos : d.pos+int(n) : d.pos+int(n)]
	d.pos += int(n)
	return b, nil
}

func (d *decoder) done() bool { return d.pos >= len(d.buf) }
