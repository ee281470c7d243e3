package hgfsproto

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// TestSizeBoundaries: every length check accepts input of exactly the
// size it needs and refuses one byte less (the mutants of make mutate
// that moved a bound survived before this test).
func TestSizeBoundaries(t *testing.T) {
	attr := make([]byte, AttrV1Size)
	if _, err := DecodeAttrV1(attr); err != nil {
		t.Errorf("DecodeAttrV1 of exactly %d bytes: %v", AttrV1Size, err)
	}
	if _, err := DecodeAttrV1(attr[:AttrV1Size-1]); err == nil {
		t.Error("DecodeAttrV1 of a byte less: no error")
	}

	v4 := AppendRequestV4(nil, 7, OpGetattrV3, 9, nil)
	if !IsV4(v4[:8]) || IsV4(v4[:7]) {
		t.Errorf("IsV4 of 8 bytes %v, of 7 %v; want true, false", IsV4(v4[:8]), IsV4(v4[:7]))
	}

	// An 8-byte legacy packet is a request; 7 bytes get no reply.
	legacy := AppendLegacyHeader(nil, 5, uint32(OpGetattrV3))
	if r, err := ParseRequest(legacy); err != nil || r.Kind != KindLegacyV3 || r.ID != 5 {
		t.Errorf("8-byte legacy request: %+v %v", r, err)
	}
	if _, err := ParseRequest(legacy[:7]); !errors.Is(err, ErrNoReply) {
		t.Errorf("7-byte packet: %v, want ErrNoReply", err)
	}

	// A V4 packet shorter than its header is answered without an id or
	// op (the host cannot trust them); one of full header size with a
	// bad field keeps them for the PROTOCOL_ERROR reply.
	r, err := ParseRequest(v4[:HeaderSize-1])
	if err == nil || r.Kind != KindV4 || r.ID != 0 || r.Op != 0 {
		t.Errorf("short V4 packet: %+v %v, want an error and no id or op", r, err)
	}
	bad := append([]byte(nil), v4...)
	bad[0] = 0 // version 0
	r, err = ParseRequest(bad)
	if err == nil || r.ID != 7 || r.Op != OpGetattrV3 {
		t.Errorf("full-size V4 packet with version 0: %+v %v, want an error with id 7 and the op", r, err)
	}
	if r, err := ParseRequest(v4); err != nil || r.ID != 7 || r.Op != OpGetattrV3 || binary.LittleEndian.Uint32(v4[16:]) != 7 {
		t.Errorf("good V4 packet: %+v %v", r, err)
	}
}

// TestNTTimeAt1601: the first representable instant is kept, only times
// before it become 0.
func TestNTTimeAt1601(t *testing.T) {
	if got := NTTime(time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC)); got != 1 {
		t.Errorf("1601-01-01 plus 100 ns: %d, want 1", got)
	}
	if got := NTTime(time.Date(1600, 12, 31, 23, 59, 59, 0, time.UTC)); got != 0 {
		t.Errorf("before 1601: %d, want 0", got)
	}
}

// TestClaimedLengthsBounded: a count or length that claims one item or
// byte more than the packet carries is refused (not read past the end);
// exactly what is carried is accepted.
func TestClaimedLengthsBounded(t *testing.T) {
	// HgfsFileNameV3: length, flags, case type, fid, name, NUL.
	fn := PathName([]byte("abc")).Append(nil)
	if n, rest, err := DecodeFileName(fn); err != nil || string(n.Name) != "abc" || len(rest) != 0 {
		t.Errorf("exact file name: %q %d %v", n.Name, len(rest), err)
	}
	over := append([]byte(nil), fn...)
	binary.LittleEndian.PutUint32(over, 4) // the NUL counted as a name byte
	if _, _, err := DecodeFileName(over); err == nil {
		t.Error("file name length over the bytes left: no error")
	}

	caps := []Capability{{Op: OpOpenV3, Flags: 0x11}, {Op: OpReadV3, Flags: 0x22}}
	sr := CreateSessionReply{SessionID: 1, MaxPacketSize: 4096, Capabilities: caps}.Append(nil)
	got, err := DecodeCreateSessionReply(sr)
	if err != nil || len(got.Capabilities) != 2 || got.Capabilities[1] != caps[1] || got.Capabilities[0] != caps[0] {
		t.Errorf("session reply: %+v %v", got, err)
	}
	binary.LittleEndian.PutUint32(sr[8:], 3)
	if _, err := DecodeCreateSessionReply(sr); err == nil {
		t.Error("a capability count one over the bytes: no error")
	}

	rr := AppendReadReply(nil, []byte("data"))
	rr = rr[:len(rr)-1] // without the trailing NUL: exactly the data
	if d, err := DecodeReadReply(rr, 10); err != nil || string(d) != "data" {
		t.Errorf("read reply carrying exactly its data: %q %v", d, err)
	}
	binary.LittleEndian.PutUint32(rr, 5)
	if _, err := DecodeReadReply(rr, 10); err == nil {
		t.Error("read reply claiming a byte more: no error")
	}

	wr := WriteRequest{Handle: 1, Data: []byte("data")}.Append(nil)
	if w, err := DecodeWriteRequest(wr); err != nil || string(w.Data) != "data" {
		t.Errorf("write request: %q %v", w.Data, err)
	}
	binary.LittleEndian.PutUint32(wr[13:], 5)
	if _, err := DecodeWriteRequest(wr); err == nil {
		t.Error("write request claiming a byte more: no error")
	}
}

// TestDirEntrySize: an entry is its head, name and NUL, padded to 8.
func TestDirEntrySize(t *testing.T) {
	for n := range 17 {
		got, min := DirEntrySize(n), dirEntryHead+n+1
		if got%8 != 0 || got < min || got >= min+8 {
			t.Errorf("DirEntrySize(%d) = %d, want %d rounded up to 8", n, got, min)
		}
	}
}

// TestSearchReadCountBounded: a count the body cannot hold is refused
// before any entry is read, even when an end marker comes first.
func TestSearchReadCountBounded(t *testing.T) {
	p := AppendSearchReadReply(nil, []DirEntry{{Name: []byte("a")}, {Name: nil}})
	binary.LittleEndian.PutUint64(p, 100)
	if e, done, err := DecodeSearchReadReply(p); err == nil {
		t.Errorf("100 entries claimed in %d bytes: %v %v, want an error", len(p), e, done)
	}
}

// TestGetattrSymlinkTarget: the target after the attributes and the
// reserved word is decoded; a reply that ends right after them has none.
func TestGetattrSymlinkTarget(t *testing.T) {
	full := GetattrReply{Attr: Attr{Type: FileTypeSymlink}, SymlinkTarget: []byte("tgt")}.Append(nil)
	if r, err := DecodeGetattrReply(full); err != nil || string(r.SymlinkTarget) != "tgt" {
		t.Errorf("symlink reply: %q %v", r.SymlinkTarget, err)
	}
	if r, err := DecodeGetattrReply(full[:AttrSize+8]); err != nil || r.SymlinkTarget != nil {
		t.Errorf("reply ending after the reserved word: %q %v", r.SymlinkTarget, err)
	}
	sr := SetattrRequest{Name: PathName([]byte("s"))}.Append(nil)
	if r, err := DecodeSetattrRequest(sr); err != nil || string(r.Name.Name) != "s" {
		t.Errorf("setattr request: %+v %v", r, err)
	}
	if _, err := DecodeSetattrRequest(sr[:8+AttrSize+7]); err == nil {
		t.Error("setattr request without its name: no error")
	}
}

// TestV1Names: V1 SEARCH_OPEN and SEARCH_READ replies carry exactly
// their names; a length one over is refused.
func TestV1Names(t *testing.T) {
	so := AppendV1SearchOpen(nil, 3, []byte("s\x00d"))
	if cp, err := DecodeV1SearchOpen(so); err != nil || string(cp) != "s\x00d" {
		t.Errorf("v1 search open: %q %v", cp, err)
	}
	binary.LittleEndian.PutUint32(so[8:], 4)
	if _, err := DecodeV1SearchOpen(so); err == nil {
		t.Error("v1 search open, length one over: no error")
	}
	sr := AppendV1SearchReadReply(nil, 3, 0, AttrV1{Size: 9}, []byte("name"))
	sr = sr[:57+4] // exactly the name, no NUL
	if a, name, err := DecodeV1SearchReadReply(sr); err != nil || string(name) != "name" || a.Size != 9 {
		t.Errorf("v1 search read reply: %+v %q %v", a, name, err)
	}
	binary.LittleEndian.PutUint32(sr[53:], 5)
	if _, _, err := DecodeV1SearchReadReply(sr); err == nil {
		t.Error("v1 search read reply, length one over: no error")
	}
}

// TestCanonicalNameLeadingEscape: a name whose first byte is the escape
// character is still checked in full.
func TestCanonicalNameLeadingEscape(t *testing.T) {
	if CanonicalName("%]]%") || CanonicalName("]]%") {
		t.Errorf("a name with %q (listed back as %q) taken as canonical", "]]%", "]%")
	}
	if !CanonicalName("%x") {
		t.Errorf("%q is canonical", "%x")
	}
}

// TestSearchReadNextOffsetBounds: an entry's next offset may be as small
// as the entry itself (header, name, NUL: no padding); an offset inside
// the entry's own name or its NUL is refused. Here the name and what
// follows the entry are zero bytes, which read as an end-of-directory
// entry from any offset into them: an offset inside the entry would
// otherwise end the listing early without an error.
func TestSearchReadNextOffsetBounds(t *testing.T) {
	name := make([]byte, dirEntryHead+1)
	entry := func(next uint32) []byte {
		p := binary.LittleEndian.AppendUint64(nil, 2)
		p = AppendReserved(p)
		p = binary.LittleEndian.AppendUint32(p, next)
		p = Attr{}.Append(p)
		return FileName{Name: name}.Append(p)
	}
	exact := uint32(dirEntryHead + len(name) + 1)
	p := binary.LittleEndian.AppendUint32(entry(exact), 0)
	p = Attr{}.Append(p)
	p = FileName{Name: []byte("z")}.Append(p)
	got, done, err := DecodeSearchReadReply(p)
	if err != nil || done || len(got) != 2 || len(got[0].Name) != len(name) || string(got[1].Name) != "z" {
		t.Fatalf("packed entries (next %d): %d entries %v %v", exact, len(got), done, err)
	}
	for _, next := range []uint32{exact - 1, exact - 2, dirEntryHead} {
		p := append(entry(next), make([]byte, dirEntryHead+2)...)
		if got, done, err := DecodeSearchReadReply(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("next offset %d inside the entry: %d entries, done %v, %v", next, len(got), done, err)
		}
	}
}
