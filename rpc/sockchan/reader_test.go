package sockchan

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// TestReaderFrames: frames that arrive several in one read, split at
// every byte, or larger than the read-ahead buffer come out whole and in
// order, each in its own slice; a length over the limit and a cut body
// fail as datamap.ReadFrame fails.
func TestReaderFrames(t *testing.T) {
	var wire []byte
	var want [][]byte
	for _, n := range []int{0, 1, 3, 100, 5000, 70000, 2} {
		content := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, content)
		wire = datamap.AppendFrame(wire, content)
	}
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(wire) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
	} {
		t.Run(name, func(t *testing.T) {
			var rd reader
			src := r()
			var prev []byte
			for i, w := range want {
				got, err := rd.frame(src, 1<<20)
				if err != nil || !bytes.Equal(got, w) {
					t.Fatalf("frame %d: %d bytes, %v; want %d bytes", i, len(got), err, len(w))
				}
				if prev != nil && len(prev) > 0 && len(got) > 0 && &prev[0] == &got[0] {
					t.Fatal("two frames share a slice")
				}
				prev = got
			}
			if _, err := rd.frame(src, 1<<20); err != io.EOF {
				t.Fatalf("after the last frame: %v, want EOF", err)
			}
		})
	}
	var rd reader
	if _, err := rd.frame(bytes.NewReader(datamap.AppendFrame(nil, make([]byte, 10))), 9); !errors.Is(err, datamap.ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	rd = reader{}
	if _, err := rd.frame(bytes.NewReader(datamap.AppendFrame(nil, make([]byte, 10))[:8]), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body: %v", err)
	}
	rd = reader{}
	if _, err := rd.frame(bytes.NewReader([]byte{0, 0}), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut length: %v", err)
	}
}
