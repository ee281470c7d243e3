package datamap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// packetSeeds are contents DecodePacket's fuzz targets start from: the
// golden packets and edge cases of every field type.
func packetSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, name := range []string{"rpci-log-hi.hex", "tclo-ping.hex", "rpci-oneshot.hex", "tclo-empty-reply.hex", "int64-words.hex"} {
		seeds = append(seeds, testutil.ReadHex(tb, name)[4:])
	}
	data := EncodePacket(Packet{Type: PacketData, Payload: []byte("1 x"), FastClose: true})
	extra := Encode(Map{
		7: {Type: TypeInt64List, Ints: []int64{1, -2}},
		8: {Type: TypeStringList, Strings: [][]byte{[]byte("a"), nil}},
	})
	seeds = append(seeds, append(bytes.Clone(data), extra...))
	seeds = append(seeds, append(bytes.Clone(data), data[:16]...)) // TYPE twice
	var many []byte
	for id := range uint32(20) {
		many = appendField(many, id+1, Field{Type: TypeInt64, Int: 1})
	}
	return append(seeds, many, data[:len(data)-3])
}

// FuzzDecodePacketMatchesDecode: DecodePacket, which walks the content
// in place, accepts exactly what Decode accepts as a packet and returns
// the same packet.
func FuzzDecodePacketMatchesDecode(f *testing.F) {
	for _, s := range packetSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		got, err := DecodePacket(content)
		want, werr := decodePacketMap(content)
		if (err == nil) != (werr == nil) {
			t.Fatalf("DecodePacket error %v, through Decode %v", err, werr)
		}
		for _, base := range []error{ErrTruncated, ErrUnknownType, ErrDuplicateID, ErrBadPacket} {
			if errors.Is(err, base) != errors.Is(werr, base) {
				t.Fatalf("DecodePacket error %v, through Decode %v", err, werr)
			}
		}
		if err == nil && (got.Type != want.Type || !bytes.Equal(got.Payload, want.Payload) || got.HasPayload != want.HasPayload || got.FastClose != want.FastClose) {
			t.Fatalf("DecodePacket %+v, through Decode %+v", got, want)
		}
	})
}

// TestDecodePacketFields: unknown fields are skipped whatever their
// type, a duplicate id is refused, and more fields than are tracked in
// place still decode.
func TestDecodePacketFields(t *testing.T) {
	seeds := packetSeeds(t)
	p, err := DecodePacket(seeds[5])
	if err != nil || string(p.Payload) != "1 x" || !p.FastClose {
		t.Fatalf("with list fields: %+v %v", p, err)
	}
	if _, err := DecodePacket(seeds[6]); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("TYPE twice: %v", err)
	}
	// ids 1 to 20, all int64 1: more than are tracked in place, and the
	// PAYLOAD among them of the wrong type.
	if _, err := DecodePacket(seeds[7]); !errors.Is(err, ErrBadPacket) || !bytes.Contains([]byte(err.Error()), []byte("PAYLOAD")) {
		t.Fatalf("20 fields: %v", err)
	}
	if _, err := DecodePacket(seeds[8]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

// TestAppendPacketFrame: the frame written in place is the frame of the
// encoded map, for every combination of fields.
func TestAppendPacketFrame(t *testing.T) {
	for _, p := range []Packet{
		{Type: PacketPing},
		{Type: PacketData, HasPayload: true},
		{Type: PacketData, Payload: []byte("f \x00\x01")},
		{Type: PacketData, Payload: bytes.Repeat([]byte("a"), MaxGuestMessage), FastClose: true},
		{Type: PacketPing, FastClose: true},
	} {
		want := AppendFrame([]byte("pre"), EncodePacket(p))
		if got := AppendPacketFrame([]byte("pre"), p); !bytes.Equal(got, want) {
			t.Errorf("%v payload %d fast %v: frame differs", p.Type, len(p.Payload), p.FastClose)
		}
	}
}

// TestPacketHotPathAllocations: encoding into a buffer with room,
// reading a frame into one and decoding it allocate nothing.
func TestPacketHotPathAllocations(t *testing.T) {
	p := Packet{Type: PacketData, Payload: make([]byte, 60000)}
	buf := make([]byte, 0, 4+MaxGuestFrame)
	frame := AppendPacketFrame(nil, p)
	rd := bytes.NewReader(frame)
	rbuf := make([]byte, len(frame))
	allocs := testing.AllocsPerRun(20, func() {
		buf = AppendPacketFrame(buf[:0], p)
		rd.Reset(frame)
		content, err := ReadFrameInto(rd, len(frame), rbuf)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DecodePacket(content); err != nil || len(got.Payload) != len(p.Payload) {
			t.Fatalf("decode: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations per message", allocs)
	}
}

// TestReadFrameInto: a frame that fits is read into the caller's buffer,
// one that does not into a new one; the limit holds either way.
func TestReadFrameInto(t *testing.T) {
	frame := AppendFrame(nil, []byte("abcdef"))
	buf := make([]byte, 16)
	got, err := ReadFrameInto(bytes.NewReader(frame), 16, buf)
	if err != nil || string(got) != "abcdef" || &got[0] != &buf[0] {
		t.Fatalf("fits: %q %v (aliases buf: %v)", got, err, err == nil && &got[0] == &buf[0])
	}
	small := make([]byte, 5)
	got, err = ReadFrameInto(bytes.NewReader(frame), 16, small)
	if err != nil || string(got) != "abcdef" || &got[0] == &small[0] {
		t.Fatalf("too small a buffer: %q %v", got, err)
	}
	if _, err := ReadFrameInto(bytes.NewReader(frame), 5, buf); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if n := binary.BigEndian.Uint32(buf); n != 6 {
		t.Fatalf("header read into buf: %d", n)
	}
}
