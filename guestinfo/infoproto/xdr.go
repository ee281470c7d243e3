package infoproto

import (
	"encoding/binary"
)

// xdrWriter appends RFC 4506 encodings.
type xdrWriter struct{ b []byte }

func (w *xdrWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

func (w *xdrWriter) bool(v bool) {
	if v {
		w.u32(1)
	} else {
		w.u32(0)
	}
}

// opaque writes a variable-length opaque or string: length, bytes, zero
// padding to a multiple of four.
func (w *xdrWriter) opaque(p []byte) {
	w.u32(uint32(len(p)))
	w.b = append(w.b, p...)
	for range pad4(len(p)) {
		w.b = append(w.b, 0)
	}
}

func pad4(n int) int { return (4 - n%4) % 4 }

// xdrSize is the encoded size of an opaque or string of n bytes.
func xdrSize(n int) int { return 4 + n + pad4(n) }

// xdrReader consumes RFC 4506 encodings; the first error sticks.
type xdrReader struct {
	b   []byte
	off int
	err error
}

func (r *xdrReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed("at byte %d: %s", r.off, sprintf(format, args...))
	}
}

func (r *xdrReader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *xdrReader) bool(what string) bool {
	switch v := r.u32(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail("%s: bool %d", what, v)
		return false
	}
}

// count reads an array length and checks it against max.
func (r *xdrReader) count(what string, max int) int {
	n := r.u32()
	if r.err == nil && n > uint32(max) {
		r.fail("%s: %d over the limit %d", what, n, max)
		return 0
	}
	return int(n)
}

// opaque reads a variable-length opaque of at most max bytes; the padding
// must be zero.
func (r *xdrReader) opaque(what string, max int) []byte {
	n := r.count(what, max)
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n+pad4(n) {
		r.fail("%s: truncated", what)
		return nil
	}
	p := r.b[r.off : r.off+n]
	for _, c := range r.b[r.off+n : r.off+n+pad4(n)] {
		if c != 0 {
			r.fail("%s: non-zero padding", what)
			return nil
		}
	}
	r.off += n + pad4(n)
	return p
}
