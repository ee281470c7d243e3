package vmx

import (
	"bytes"
	"testing"
)

func TestVSockPreamble(t *testing.T) {
	p := VSockPreamble{DstCID: 0, DstPort: 976, SrcCID: 3, SrcPort: 1023}
	b := p.Encode()
	if len(b) != VSockPreambleSize || !bytes.HasPrefix(b, []byte("VSK1")) || b[8] != 0xd0 || b[9] != 0x03 {
		t.Fatalf("encoded % x", b)
	}
	if got, err := DecodeVSockPreamble(b); err != nil || got != p {
		t.Fatalf("decoded %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:19], append([]byte("VSK2"), b[4:]...), append(b, 0)} {
		if _, err := DecodeVSockPreamble(bad); err == nil {
			t.Errorf("accepted % x", bad)
		}
	}
}

// FuzzDecodeVSockPreamble: any bytes decode or fail without panicking,
// and what decodes encodes back to the same bytes.
func FuzzDecodeVSockPreamble(f *testing.F) {
	f.Add(VSockPreamble{DstPort: 975, SrcCID: 3, SrcPort: 49152}.Encode())
	f.Add([]byte("VSK1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeVSockPreamble(b)
		if err == nil && !bytes.Equal(p.Encode(), b) {
			t.Fatalf("% x decoded to %+v, which encodes differently", b, p)
		}
	})
}
