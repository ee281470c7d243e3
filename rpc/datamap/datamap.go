// Package datamap is the wire codec of GuestRPC over vsock: the serialized
// "DataMap" that frames every TCLO and RPCI message on ports 975 and 976,
// and on the unix sockets of vmxsim, which speak the same framing.
//
// A DataMap is a set of typed fields keyed by a numeric id. On the wire it is
//
//	packet  := u32be contentLen, content[contentLen]
//	content := entry*
//	entry   := u32be type, u32be fieldId, value
//
// with int64 values written as two big-endian uint32 words, low word first
// (a quirk of the reference encoder). See docs/architecture.md section 2.
//
// The package is pure: no I/O beyond the io.Reader and io.Writer it is
// handed, no globals. Both the guest side and vmxsim import it, and golden
// vectors captured from open-vm-tools pin it.
package datamap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Type is the type tag of a DataMap field.
type Type uint32

// Field types.
const (
	TypeInt64      Type = 1
	TypeString     Type = 2
	TypeInt64List  Type = 3
	TypeStringList Type = 4
)

func (t Type) String() string {
	switch t {
	case TypeInt64:
		return "int64"
	case TypeString:
		return "string"
	case TypeInt64List:
		return "int64list"
	case TypeStringList:
		return "stringlist"
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Field is one typed entry of a DataMap. Exactly one of the value fields is
// meaningful, chosen by Type.
type Field struct {
	Type    Type
	Int     int64
	Str     []byte
	Ints    []int64
	Strings [][]byte
}

// Map is a decoded DataMap, keyed by field id.
type Map map[uint32]Field

// Errors returned by Decode. They are wrapped with the offset and field id
// where decoding stopped.
var (
	ErrTruncated   = errors.New("datamap: truncated")
	ErrUnknownType = errors.New("datamap: unknown field type")
	ErrDuplicateID = errors.New("datamap: duplicate field id")
	ErrTooLarge    = errors.New("datamap: packet too large")
)

// Decode parses DataMap content (the bytes after the length prefix).
func Decode(b []byte) (Map, error) {
	m := Map{}
	err := walk(b, true, func(start int, id uint32, f Field) error {
		if _, dup := m[id]; dup {
			return fmt.Errorf("%w %d at offset %d", ErrDuplicateID, id, start)
		}
		m[id] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// walk decodes the fields of DataMap content b in order and calls fn
// with each one and the offset it starts at; an error of fn ends the
// walk. List values are read into the Field only with lists; without,
// they are checked as strictly but skipped, so nothing is allocated.
func walk(b []byte, lists bool, fn func(start int, id uint32, f Field) error) error {
	d := decoder{b: b}
	for d.err == nil && d.off < len(d.b) {
		start := d.off
		typ := Type(d.u32())
		id := d.u32()
		if d.err != nil {
			break
		}
		var f Field
		f.Type = typ
		switch typ {
		case TypeInt64:
			f.Int = d.i64()
		case TypeString:
			f.Str = d.bytes()
		case TypeInt64List:
			n := d.count(8)
			switch {
			case d.err != nil:
			case lists:
				f.Ints = make([]int64, n)
				for i := range f.Ints {
					f.Ints[i] = d.i64()
				}
			default:
				d.off += 8 * n // count checked that they are there
			}
		case TypeStringList:
			n := d.count(4)
			if d.err == nil && lists {
				f.Strings = make([][]byte, n)
			}
			for i := 0; d.err == nil && i < n; i++ {
				if s := d.bytes(); lists {
					f.Strings[i] = s
				}
			}
		default:
			return fmt.Errorf("%w %d (field %d at offset %d)", ErrUnknownType, uint32(typ), id, start)
		}
		if d.err != nil {
			return fmt.Errorf("%w: field %d (%s) at offset %d", d.err, id, typ, start)
		}
		if err := fn(start, id, f); err != nil {
			return err
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w at offset %d", d.err, d.off)
	}
	return nil
}

// decoder is a cursor with a sticky error: after the first short read every
// accessor returns zero values and err stays set.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) u32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.off < 4 {
		d.err = ErrTruncated
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) i64() int64 {
	lo := d.u32()
	hi := d.u32()
	return int64(uint64(hi)<<32 | uint64(lo))
}

// count reads a list length and checks that the remaining input can hold
// that many items of at least minItem bytes, so garbage cannot make us
// allocate gigabytes.
func (d *decoder) count(minItem int) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n)*uint64(minItem) > uint64(len(d.b)-d.off) {
		d.err = ErrTruncated
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count(1)
	if d.err != nil {
		return nil
	}
	v := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return v
}

// Encode serializes m's content (without the length prefix) with fields in
// ascending id order, which is the order open-vm-tools writes them in.
func Encode(m Map) []byte {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b []byte
	for _, id := range ids {
		b = appendField(b, id, m[id])
	}
	return b
}

func appendField(b []byte, id uint32, f Field) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(f.Type))
	b = binary.BigEndian.AppendUint32(b, id)
	switch f.Type {
	case TypeInt64:
		b = appendI64(b, f.Int)
	case TypeString:
		b = appendBytes(b, f.Str)
	case TypeInt64List:
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.Ints)))
		for _, v := range f.Ints {
			b = appendI64(b, v)
		}
	case TypeStringList:
		b = binary.BigEndian.AppendUint32(b, uint32(len(f.Strings)))
		for _, s := range f.Strings {
			b = appendBytes(b, s)
		}
	}
	return b
}

func appendI64(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(uint64(v)))
	return binary.BigEndian.AppendUint32(b, uint32(uint64(v)>>32))
}

func appendBytes(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// ReadFrame reads one length-prefixed DataMap from r and returns its
// content. A content length above max is refused with ErrTooLarge before
// anything is allocated; the caller should then drop the connection, since
// the stream can no longer be trusted.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	return ReadFrameInto(r, max, nil)
}

// ReadFrameInto is ReadFrame reading into buf when the content fits its
// capacity (the result is then buf[:n]), else into a new slice, so a
// caller that reuses buf reads large frames into memory already mapped.
// The first bytes of buf are overwritten even when the frame is refused.
func ReadFrameInto(r io.Reader, max int, buf []byte) ([]byte, error) {
	var hdr []byte
	if cap(buf) >= 4 {
		hdr = buf[:4]
	} else {
		hdr = make([]byte, 4)
	}
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	b := buf[:0]
	if uint64(cap(b)) < uint64(n) {
		b = make([]byte, n)
	}
	b = b[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("datamap: truncated frame, body of %d bytes: %w", n, err)
	}
	return b, nil
}

// AppendFrame appends content with its u32be length prefix to b.
func AppendFrame(b, content []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(content)))
	return append(b, content...)
}
