package datamap

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/govmtools/govmtools/internal/testutil"
)

func TestGoldenPackets(t *testing.T) {
	tests := []struct {
		file string
		want Packet
	}{
		{"rpci-log-hi.hex", Packet{Type: PacketData, Payload: []byte("log hi"), HasPayload: true}},
		{"tclo-ping.hex", Packet{Type: PacketPing}},
		{"rpci-oneshot.hex", Packet{Type: PacketData, Payload: []byte("info-get guestinfo.k"), HasPayload: true, FastClose: true}},
		{"tclo-empty-reply.hex", Packet{Type: PacketData, Payload: []byte{}, HasPayload: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			wire := testutil.ReadHex(t, tt.file)
			got := AppendFrame(nil, EncodePacket(tt.want))
			if !bytes.Equal(got, wire) {
				t.Errorf("encode:\n got %x\nwant %x", got, wire)
			}
			if got := AppendPacketFrame([]byte("x"), tt.want); !bytes.Equal(got[1:], wire) || got[0] != 'x' {
				t.Errorf("AppendPacketFrame:\n got %x\nwant x + %x", got, wire)
			}
			content, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(wire)), MaxGuestFrame)
			if err != nil {
				t.Fatal(err)
			}
			p, err := DecodePacket(content)
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != tt.want.Type || !bytes.Equal(p.Payload, tt.want.Payload) || p.HasPayload != tt.want.HasPayload || p.FastClose != tt.want.FastClose {
				t.Errorf("decode: got %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestInt64WordOrder(t *testing.T) {
	wire := testutil.ReadHex(t, "int64-words.hex")
	m, err := Decode(wire[4:])
	if err != nil {
		t.Fatal(err)
	}
	if got := m[9].Int; got != 0x0000000500000007 {
		t.Fatalf("int64 = %#x, want 0x500000007", got)
	}
	if got := Encode(m); !bytes.Equal(got, wire[4:]) {
		t.Fatalf("re-encode %x, want %x", got, wire[4:])
	}
	neg := Encode(Map{1: {Type: TypeInt64, Int: -2}})
	if want := "0000000100000001fffffffeffffffff"; hex.EncodeToString(neg) != want {
		t.Fatalf("-2 encoded as %x, want %s", neg, want)
	}
}

func TestAllTypesRoundTrip(t *testing.T) {
	m := Map{
		1: {Type: TypeInt64, Int: 1 << 40},
		2: {Type: TypeString, Str: []byte("a b\x00c")},
		7: {Type: TypeInt64List, Ints: []int64{0, -1, 1 << 62}},
		8: {Type: TypeStringList, Strings: [][]byte{[]byte("x"), {}, []byte("yz")}},
	}
	got, err := Decode(Encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Encode(got), Encode(m)) {
		t.Fatalf("round trip changed the map: %v", got)
	}
	if string(got[8].Strings[2]) != "yz" || got[7].Ints[2] != 1<<62 {
		t.Fatalf("bad values: %v", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := EncodePacket(Packet{Type: PacketData, Payload: []byte("ping")})
	u32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"truncated header", good[:6], ErrTruncated},
		{"truncated string", good[:len(good)-1], ErrTruncated},
		{"unknown type", u32(9, 1, 0), ErrUnknownType},
		{"duplicate id", append(append([]byte{}, good...), good[:16]...), ErrDuplicateID},
		{"huge list count", u32(3, 1, 0xffffffff), ErrTruncated},
		{"huge string length", u32(2, 2, 0x7fffffff), ErrTruncated},
		// Past the end by less than the offset: the bound is what is left
		// after the offset, not the whole input.
		{"string past the end after a field", append(append(Encode(Map{1: {Type: TypeInt64, Int: 1}}), u32(2, 2, 20)...), make([]byte, 10)...), ErrTruncated},
		{"list past the end after a field", append(append(Encode(Map{1: {Type: TypeInt64, Int: 1}}), u32(3, 2, 3)...), make([]byte, 16)...), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
		})
	}

	badPackets := map[string]Map{
		"no type":        {FieldPayload: {Type: TypeString, Str: []byte("x")}},
		"string type":    {FieldType: {Type: TypeString, Str: []byte("1")}},
		"unknown type":   {FieldType: {Type: TypeInt64, Int: 7}},
		"data no body":   {FieldType: {Type: TypeInt64, Int: 1}},
		"payload is int": {FieldType: {Type: TypeInt64, Int: 1}, FieldPayload: {Type: TypeInt64, Int: 3}},
	}
	for name, m := range badPackets {
		if _, err := DecodePacket(Encode(m)); !errors.Is(err, ErrBadPacket) {
			t.Errorf("%s: DecodePacket = %v, want ErrBadPacket", name, err)
		}
	}
	// Unknown field ids are ignored.
	p, err := DecodePacket(Encode(Map{FieldType: {Type: TypeInt64, Int: 2}, 99: {Type: TypeString, Str: []byte("?")}}))
	if err != nil || p.Type != PacketPing {
		t.Fatalf("unknown field: %+v, %v", p, err)
	}
}

func TestReadFrame(t *testing.T) {
	frame := AppendFrame(nil, []byte("abcdef"))
	if _, err := ReadFrame(bytes.NewReader(frame), 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(frame[:7]), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(frame[:4]), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("header without a body: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 100); err != io.EOF {
		t.Fatalf("clean EOF: %v", err)
	}
	if _, err := ReadFrame(iotest.ErrReader(io.ErrClosedPipe), 100); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("reader error: %v", err)
	}
	b, err := ReadFrame(iotest.HalfReader(bytes.NewReader(frame)), 6)
	if err != nil || string(b) != "abcdef" {
		t.Fatalf("half reader: %q %v", b, err)
	}
}

// FuzzDecodePacket feeds arbitrary content to the decoder: it must never
// panic, and whatever it accepts must survive an encode/decode round trip.
func FuzzDecodePacket(f *testing.F) {
	for _, name := range []string{"rpci-log-hi.hex", "tclo-ping.hex", "rpci-oneshot.hex", "tclo-empty-reply.hex", "int64-words.hex"} {
		f.Add(testutil.ReadHex(f, name)[4:])
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		m, err := Decode(content)
		if err == nil {
			m2, err := Decode(Encode(m))
			if err != nil {
				t.Fatalf("re-decode of accepted map failed: %v", err)
			}
			if !bytes.Equal(Encode(m2), Encode(m)) {
				t.Fatal("map changed on round trip")
			}
		}
		p, err := DecodePacket(content)
		if err != nil {
			return
		}
		p2, err := DecodePacket(EncodePacket(p))
		if err != nil {
			t.Fatalf("re-decode of accepted packet failed: %v", err)
		}
		if p2.Type != p.Type || !bytes.Equal(p2.Payload, p.Payload) || p2.HasPayload != p.HasPayload || p2.FastClose != p.FastClose {
			t.Fatalf("packet changed on round trip: %+v -> %+v", p, p2)
		}
		if got, want := AppendPacketFrame(nil, p), AppendFrame(nil, EncodePacket(p)); !bytes.Equal(got, want) {
			t.Fatalf("AppendPacketFrame %x, EncodePacket framed %x", got, want)
		}
	})
}

// TestMaxGuestFrame: the largest guest packet (a full message, with
// FAST_CLOSE) is exactly MaxGuestFrame bytes of content.
func TestMaxGuestFrame(t *testing.T) {
	p := EncodePacket(Packet{Type: PacketData, Payload: make([]byte, MaxGuestMessage), FastClose: true})
	if len(p) != MaxGuestFrame {
		t.Fatalf("largest guest packet is %d bytes, MaxGuestFrame %d", len(p), MaxGuestFrame)
	}
}

// TestListCountBoundsAllocation: a list count the remaining bytes cannot
// hold is refused before anything is allocated for it, so garbage cannot
// make the decoder allocate more than a small multiple of its input.
func TestListCountBoundsAllocation(t *testing.T) {
	const rest = 1 << 20
	in := binary.BigEndian.AppendUint32(nil, uint32(TypeInt64List))
	in = binary.BigEndian.AppendUint32(in, 1)
	in = binary.BigEndian.AppendUint32(in, rest) // rest int64s claimed in rest bytes
	in = append(in, make([]byte, rest)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Decode(in)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Decode = %v, want ErrTruncated", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > rest {
		t.Errorf("decoding %d bytes allocated %d", len(in), got)
	}
}
