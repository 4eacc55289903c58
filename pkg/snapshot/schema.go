package snapshot

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// field is one numbered field of a record type T: how to append it to a
// record and how to store a decoded value into T.
type field[T any] struct {
	num      uint32
	name     string
	typ      string // type as the format documentation lists it
	wire     wireType
	repeated bool // may appear more than once (one element each time)
	put      func(e *encoder, v *T)
	get      func(fv fieldValue, v *T) error
}

// schema is the field table of a record type. The table, not the Go
// struct, fixes the encoding: field numbers never change meaning within
// a major version, and reordering the struct changes nothing.
type schema[T any] struct {
	name   string
	fields []field[T]
	index  [maxKnownField + 1]int8 // field number to position in fields plus one; 0 for unknown
}

// newSchema builds a schema and checks its table. A bad table is a bug in
// this package, so it panics during package initialization.
func newSchema[T any](name string, fields ...field[T]) *schema[T] {
	s := &schema[T]{name: name, fields: fields}
	for i, f := range fields {
		if f.num == 0 || f.num > maxKnownField || s.index[f.num] != 0 {
			panic(fmt.Sprintf("snapshot: schema %s: bad or duplicate field number %d", name, f.num))
		}
		s.index[f.num] = int8(i + 1)
	}
	return s
}

func (s *schema[T]) encode(e *encoder, v *T) {
	for i := range s.fields {
		s.fields[i].put(e, v)
	}
}

// decode reads a record's fields into v. Unknown field numbers are
// skipped; a known field with the wrong wire type, or a singular field
// that appears twice, is an error.
func (s *schema[T]) decode(d *decoder, v *T) error {
	var seen uint64
	for !d.done() {
		fv, err := d.next()
		if err != nil {
			return inField(s.label(fv.num), fv.offset, err)
		}
		if fv.num > maxKnownField || s.index[fv.num] == 0 {
			continue
		}
		f := &s.fields[s.index[fv.num]-1]
		if fv.wire != f.wire {
			return inField(f.name, fv.offset, errorf(ErrInvalid, "wire type %d, want %d", fv.wire, f.wire))
		}
		if !f.repeated {
			bit := uint64(1) << fv.num
			if seen&bit != 0 {
				return inField(f.name, fv.offset, errorf(ErrInvalid, "field %d appears twice", fv.num))
			}
			seen |= bit
		}
		if err := f.get(fv, v); err != nil {
			return inField(f.name, fv.offset, err)
		}
	}
	return nil
}

// label names field num for an error: its name if the schema has it,
// "key" when the key itself is unreadable, "field N" otherwise.
func (s *schema[T]) label(num uint64) string {
	switch {
	case num == 0:
		return "key"
	case num <= maxKnownField && s.index[num] != 0:
		return s.fields[s.index[num]-1].name
	}
	return "field " + strconv.FormatUint(num, 10)
}

// decodeBytes decodes a record held in b, which starts at stream offset
// base, with a budget of its own.
func (s *schema[T]) decodeBytes(b []byte, base int64, v *T) error {
	return s.decode(&decoder{buf: b, base: base, budget: newBudget()}, v)
}

// decodeNested decodes the record nested in fv within fv's budget.
func (s *schema[T]) decodeNested(fv fieldValue, v *T) error {
	budget := fv.budget
	if budget == nil {
		budget = newBudget()
	}
	return s.decode(&decoder{buf: fv.b, base: fv.offset, budget: budget}, v)
}

// maxDecodedBytes bounds the memory that the list elements of one
// record may take once decoded. An element can cost 2 bytes of payload,
// and zstd compresses a run of them to almost nothing, so without this
// bound a small snapshot could decode into gigabytes. A process at every
// other limit of the format (262,144 VMAs of 136 bytes, 1,048,576 fds of
// 16 bytes, 65,536 threads of 408 bytes as Go values) needs about 80 MiB.
const maxDecodedBytes = 256 << 20

func newBudget() *int64 {
	b := int64(maxDecodedBytes)
	return &b
}

// charge takes n bytes from budget, or fails when it runs out.
func charge(budget *int64, n int64) error {
	if budget == nil {
		return nil
	}
	if *budget -= n; *budget < 0 {
		return errorf(ErrTooLarge, "the record's lists decode to more than %d MiB", maxDecodedBytes>>20)
	}
	return nil
}

// describe lists the fields as the format documentation does: number,
// name and type, one per line.
func (s *schema[T]) describe() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n", s.name)
	for _, f := range s.fields {
		fmt.Fprintf(&sb, "  %2d  %-16s %s\n", f.num, f.name, f.typ)
	}
	return sb.String()
}

type unsigned interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64
}

type signed interface {
	~int8 | ~int16 | ~int32 | ~int64
}

// typeName returns N's type for the documentation: the wire-level kind,
// and the Go type's name when it has its own.
func typeName[N any]() string {
	t := reflect.TypeFor[N]()
	kind := t.Kind().String()
	if t.Name() == kind {
		return kind
	}
	return kind + " (" + t.Name() + ")"
}

func uintField[T any, N unsigned](num uint32, name string, at func(*T) *N) field[T] {
	return field[T]{
		num: num, name: name, typ: typeName[N](), wire: wireVarint,
		put: func(e *encoder, v *T) { e.uvarint(num, uint64(*at(v))) },
		get: func(fv fieldValue, v *T) error {
			n := N(fv.u)
			if uint64(n) != fv.u {
				return errorf(ErrInvalid, "value %d overflows %s", fv.u, typeName[N]())
			}
			*at(v) = n
			return nil
		},
	}
}

func intField[T any, N signed](num uint32, name string, at func(*T) *N) field[T] {
	return field[T]{
		num: num, name: name, typ: typeName[N](), wire: wireVarint,
		put: func(e *encoder, v *T) { e.uvarint(num, zigzag(int64(*at(v)))) },
		get: func(fv fieldValue, v *T) error {
			x := unzigzag(fv.u)
			n := N(x)
			if int64(n) != x {
				return errorf(ErrInvalid, "value %d overflows %s", x, typeName[N]())
			}
			*at(v) = n
			return nil
		},
	}
}

func durationField[T any](num uint32, name string, at func(*T) *time.Duration) field[T] {
	f := intField(num, name, at)
	f.typ = "duration"
	return f
}

// timeField encodes a time as nanoseconds since the Unix epoch. The zero
// time.Time is left out; any other time is written even when it is the
// epoch itself, so the two stay apart.
func timeField[T any](num uint32, name string, at func(*T) *time.Time) field[T] {
	return field[T]{
		num: num, name: name, typ: "time", wire: wireVarint,
		put: func(e *encoder, v *T) {
			t := *at(v)
			if t.IsZero() {
				return
			}
			ns := t.UnixNano()
			if !time.Unix(0, ns).Equal(t) && e.err == nil {
				e.err = fmt.Errorf("encode %s: time %v is outside the years 1678 to 2262", name, t)
			}
			e.key(num, wireVarint)
			e.buf = binary.AppendUvarint(e.buf, zigzag(ns))
		},
		get: func(fv fieldValue, v *T) error {
			*at(v) = time.Unix(0, unzigzag(fv.u))
			return nil
		},
	}
}

func boolField[T any](num uint32, name string, at func(*T) *bool) field[T] {
	return field[T]{
		num: num, name: name, typ: "bool", wire: wireVarint,
		put: func(e *encoder, v *T) {
			if *at(v) {
				e.uvarint(num, 1)
			}
		},
		get: func(fv fieldValue, v *T) error {
			if fv.u > 1 {
				return errorf(ErrInvalid, "bool value %d, want 0 or 1", fv.u)
			}
			*at(v) = fv.u == 1
			return nil
		},
	}
}

func stringField[T any](num uint32, name string, at func(*T) *string) field[T] {
	return field[T]{
		num: num, name: name, typ: "string", wire: wireBytes,
		put: func(e *encoder, v *T) {
			s := *at(v)
			if s != "" {
				e.key(num, wireBytes)
				e.buf = binary.AppendUvarint(e.buf, uint64(len(s)))
				e.buf = append(e.buf, s...)
			}
		},
		get: func(fv fieldValue, v *T) error {
			*at(v) = string(fv.b)
			return nil
		},
	}
}

// bytesField decodes to a slice of the record's buffer, which the reader
// allocates per section and never reuses.
func bytesField[T any](num uint32, name string, at func(*T) *[]byte) field[T] {
	return field[T]{
		num: num, name: name, typ: "bytes", wire: wireBytes,
		put: func(e *encoder, v *T) { e.bytes(num, *at(v)) },
		get: func(fv fieldValue, v *T) error {
			*at(v) = fv.b
			return nil
		},
	}
}

// recordField is a nested record held by value. A record whose fields
// are all zero is left out.
func recordField[T, U any](num uint32, name string, at func(*T) *U, s *schema[U]) field[T] {
	return field[T]{
		num: num, name: name, typ: s.name, wire: wireBytes,
		put: func(e *encoder, v *T) {
			e.nested(num, false, func(e *encoder) { s.encode(e, at(v)) })
		},
		get: func(fv fieldValue, v *T) error { return s.decodeBytes(fv.b, fv.offset, at(v)) },
	}
}

// optionalField is a nested record held by pointer: present, even with
// all fields zero, exactly when the pointer is not nil.
func optionalField[T, U any](num uint32, name string, at func(*T) **U, s *schema[U]) field[T] {
	return field[T]{
		num: num, name: name, typ: "optional " + s.name, wire: wireBytes,
		put: func(e *encoder, v *T) {
			if p := *at(v); p != nil {
				e.nested(num, true, func(e *encoder) { s.encode(e, p) })
			}
		},
		get: func(fv fieldValue, v *T) error {
			p := new(U)
			if err := s.decodeNested(fv, p); err != nil {
				return err
			}
			*at(v) = p
			return nil
		},
	}
}

// repeatedField is a list of nested records, one field per element, at
// most limit of them.
func repeatedField[T, U any](num uint32, name string, at func(*T) *[]U, s *schema[U], limit int) field[T] {
	size := int64(reflect.TypeFor[U]().Size())
	return field[T]{
		num: num, name: name, typ: "repeated " + s.name, wire: wireBytes, repeated: true,
		put: func(e *encoder, v *T) {
			list := *at(v)
			if len(list) > limit && e.err == nil {
				e.err = fmt.Errorf("encode %s: %d elements, limit %d", name, len(list), limit)
			}
			for i := range list {
				e.nested(num, true, func(e *encoder) { s.encode(e, &list[i]) })
			}
		},
		get: func(fv fieldValue, v *T) error {
			list := at(v)
			if len(*list) >= limit {
				return errorf(ErrTooLarge, "more than %d elements", limit)
			}
			if err := charge(fv.budget, size); err != nil {
				return err
			}
			var u U
			if err := s.decodeNested(fv, &u); err != nil {
				return inField("["+strconv.Itoa(len(*list))+"]", fv.offset, err)
			}
			*list = append(*list, u)
			return nil
		},
	}
}

// packedField is a list of unsigned integers in one length-delimited
// field, as consecutive varints, at most limit of them.
func packedField[T any, N unsigned](num uint32, name string, at func(*T) *[]N, limit int) field[T] {
	return field[T]{
		num: num, name: name, typ: "packed " + typeName[N](), wire: wireBytes,
		put: func(e *encoder, v *T) {
			list := *at(v)
			if len(list) > limit && e.err == nil {
				e.err = fmt.Errorf("encode %s: %d elements, limit %d", name, len(list), limit)
			}
			e.nested(num, false, func(e *encoder) {
				for _, x := range list {
					e.buf = binary.AppendUvarint(e.buf, uint64(x))
				}
			})
		},
		get: func(fv fieldValue, v *T) error { return decodePacked(fv, at(v), limit) },
	}
}

func decodePacked[N unsigned](fv fieldValue, list *[]N, limit int) error {
	d := decoder{buf: fv.b, base: fv.offset}
	size := int64(reflect.TypeFor[N]().Size())
	var out []N
	for !d.done() {
		if len(out) >= limit {
			return errorf(ErrTooLarge, "more than %d elements", limit)
		}
		if err := charge(fv.budget, size); err != nil {
			return err
		}
		at := d.offset()
		x, err := d.uvarint()
		if err != nil {
			return inField("["+strconv.Itoa(len(out))+"]", at, err)
		}
		n := N(x)
		if uint64(n) != x {
			return inField("["+strconv.Itoa(len(out))+"]", at,
				errorf(ErrInvalid, "value %d overflows %s", x, typeName[N]()))
		}
		out = append(out, n)
	}
	*list = out
	return nil
}
