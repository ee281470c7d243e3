package datamap

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzReadFrame: a stream of any bytes yields frames no longer than the
// limit, each exactly its length prefix says, or an error; nothing larger
// than the limit is ever allocated.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("hello")), 64)
	f.Add([]byte{0, 0, 0, 9, 'a'}, 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, 1<<20)
	f.Add(append(AppendFrame(nil, nil), AppendFrame(nil, []byte("x"))...), 16)
	f.Fuzz(func(t *testing.T, stream []byte, max int) {
		if max < 0 || max > 1<<20 {
			max = 1 << 20
		}
		r := bytes.NewReader(stream)
		off := 0
		for {
			b, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(b) > max {
				t.Fatalf("frame of %d bytes over the limit %d", len(b), max)
			}
			if n := binary.BigEndian.Uint32(stream[off:]); int(n) != len(b) || !bytes.Equal(stream[off+4:off+4+len(b)], b) {
				t.Fatalf("frame at %d: prefix %d, got %d bytes", off, n, len(b))
			}
			off += 4 + len(b)
			DecodePacket(b)
		}
	})
}
