package hgfsproto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

func goldenFiles(t testing.TB) []string {
	m, err := filepath.Glob("testdata/*.hex")
	if err != nil || len(m) == 0 {
		t.Fatalf("no golden vectors: %v", err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

const session = 0x0102030405060708

func TestGoldenGetattrRequest(t *testing.T) {
	wire := testutil.ReadHex(t, "getattr-v3-request.hex")
	if len(wire) != 100 {
		t.Fatalf("worked example is 100 bytes, vector has %d", len(wire))
	}
	payload := AppendHintsRequest(nil, 0, PathName(CPName("/share/dir/f.txt")))
	if got := AppendRequestV4(nil, 7, OpGetattrV3, session, payload); !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
	req, err := ParseRequest(wire)
	if err != nil || req.Kind != KindV4 || req.ID != 7 || req.Op != OpGetattrV3 || req.Header.SessionID != session {
		t.Fatalf("ParseRequest = %+v, %v", req, err)
	}
	hints, name, err := DecodeHintsRequest(req.Payload)
	if err != nil || hints != 0 || string(name.Name) != "share\x00dir\x00f.txt" || name.CaseType != CaseSensitive || name.Fid != InvalidHandle {
		t.Fatalf("DecodeHintsRequest = %d %+v %v", hints, name, err)
	}
	comps, err := ParseCPName(name.Name)
	if err != nil || strings.Join(comps, "/") != "share/dir/f.txt" {
		t.Fatalf("ParseCPName = %q %v", comps, err)
	}
}

func TestGoldenLegacyRequest(t *testing.T) {
	wire := testutil.ReadHex(t, "legacy-getattr-v3-request.hex")
	got := AppendHintsRequest(AppendLegacyHeader(nil, 7, uint32(OpGetattrV3)), 0, PathName(CPName("share")))
	if !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
	req, err := ParseRequest(wire)
	if err != nil || req.Kind != KindLegacyV3 || req.ID != 7 || req.Op != OpGetattrV3 {
		t.Fatalf("ParseRequest = %+v, %v", req, err)
	}
	if _, n, err := DecodeHintsRequest(req.Payload); err != nil || string(n.Name) != "share" {
		t.Fatalf("payload: %q %v", n.Name, err)
	}
	// Its error reply is the 8-byte header alone.
	if r := AppendReply(nil, req, 0, StatusNoSuchFileOrDir, []byte("ignored")); hex.EncodeToString(r) != "0700000001000000" {
		t.Fatalf("legacy error reply %x", r)
	}
}

func TestGoldenSession(t *testing.T) {
	wire := testutil.ReadHex(t, "create-session-request.hex")
	if got := AppendRequestV4(nil, 1, OpCreateSessionV4, 0, CreateSessionRequest{MaxPacketSize: LargePacketMax}.Append(nil)); !bytes.Equal(got, wire) {
		t.Fatalf("request encoder:\n got %x\nwant %x", got, wire)
	}
	req, err := ParseRequest(wire)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := DecodeCreateSessionRequest(req.Payload)
	if err != nil || cs.MaxPacketSize != LargePacketMax {
		t.Fatalf("%+v %v", cs, err)
	}

	wire = testutil.ReadHex(t, "create-session-reply.hex")
	caps := []Capability{{OpGetattrV3, CapIsSupported}, {OpSearchCloseV3, CapIsSupported}}
	rep := CreateSessionReply{SessionID: session, MaxPacketSize: LargePacketMax, Flags: SessionMaxPacketSizeValid, Capabilities: caps}
	if got := AppendReply(nil, req, session, StatusSuccess, rep.Append(nil)); !bytes.Equal(got, wire) {
		t.Fatalf("reply encoder:\n got %x\nwant %x", got, wire)
	}
	r, err := ParseReply(wire)
	if err != nil || !r.V4 || r.ID != 1 || r.Status != StatusSuccess || r.Session != session {
		t.Fatalf("ParseReply = %+v %v", r, err)
	}
	got, err := DecodeCreateSessionReply(r.Payload)
	if err != nil || got.SessionID != session || got.MaxPacketSize != LargePacketMax || got.Flags != 1 || len(got.Capabilities) != 2 || got.Capabilities[1] != caps[1] {
		t.Fatalf("DecodeCreateSessionReply = %+v %v", got, err)
	}
}

func TestGoldenGetattrReply(t *testing.T) {
	wire := testutil.ReadHex(t, "getattr-v3-reply.hex")
	if len(wire) != 181 {
		t.Fatalf("a regular file's reply is 181 bytes, vector has %d", len(wire))
	}
	r, err := ParseReply(wire)
	if err != nil {
		t.Fatal(err)
	}
	g, err := DecodeGetattrReply(r.Payload)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Attr
	want := time.Date(2020, 1, 1, 0, 0, 0, 123456700, time.UTC)
	_, mtime, _ := a.Times()
	if a.Type != FileTypeRegular || a.Size != 5 || a.Perm() != 0o644 || a.UserID != 1000 || a.HostFileID != 42 || !mtime.Equal(want) || len(g.SymlinkTarget) != 0 {
		t.Fatalf("attr %+v mtime %v", a, mtime)
	}
	req := Request{Kind: KindV4, ID: 7, Op: OpGetattrV3}
	if got := AppendReply(nil, req, session, StatusSuccess, g.Append(nil)); !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
}

func TestGoldenStaleSession(t *testing.T) {
	wire := testutil.ReadHex(t, "stale-session-reply.hex")
	r, err := ParseReply(wire)
	if err != nil || r.Status != StatusStaleSession || r.Session != InvalidSessionID || len(r.Payload) != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	req := Request{Kind: KindV4, ID: 7, Op: OpGetattrV3}
	if got := AppendReply(nil, req, InvalidSessionID, StatusStaleSession, nil); !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
}

func TestGoldenSearchEnd(t *testing.T) {
	wire := testutil.ReadHex(t, "search-read-v3-end.hex")
	r, err := ParseReply(wire)
	if err != nil {
		t.Fatal(err)
	}
	entries, done, err := DecodeSearchReadReply(r.Payload)
	if err != nil || !done || len(entries) != 0 {
		t.Fatalf("%v %v %v", entries, done, err)
	}
	req := Request{Kind: KindV4, ID: 9, Op: OpSearchReadV3}
	if got := AppendReply(nil, req, session, StatusSuccess, AppendSearchReadReply(nil, nil)); !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
}

func TestGoldenV1SearchRead(t *testing.T) {
	wire := testutil.ReadHex(t, "v1-search-read-reply.hex")
	a, name, err := DecodeV1SearchReadReply(wire)
	if err != nil || string(name) != "shared" || a.Type != FileTypeDirectory || a.Size != 4192 || a.Permissions != 5 {
		t.Fatalf("%+v %q %v", a, name, err)
	}
	if got := AppendV1SearchReadReply(nil, 0, StatusSuccess, a, name); !bytes.Equal(got, wire) {
		t.Fatalf("encoder:\n got %x\nwant %x", got, wire)
	}
}

func TestGoldenWriteAndRename(t *testing.T) {
	wire := testutil.ReadHex(t, "write-v3-request.hex")
	if got := AppendRequestV4(nil, 11, OpWriteV3, session, WriteRequest{Handle: 3, Offset: 4096, Data: []byte("hello")}.Append(nil)); !bytes.Equal(got, wire) {
		t.Fatalf("write encoder:\n got %x\nwant %x", got, wire)
	}
	req, _ := ParseRequest(wire)
	w, err := DecodeWriteRequest(req.Payload)
	if err != nil || w.Handle != 3 || w.Offset != 4096 || string(w.Data) != "hello" {
		t.Fatalf("%+v %v", w, err)
	}
	wire = testutil.ReadHex(t, "rename-v3-request.hex")
	rr := RenameRequest{OldName: PathName(CPName("share/old")), NewName: PathName(CPName("share/new"))}
	if got := AppendRequestV4(nil, 12, OpRenameV3, session, rr.Append(nil)); !bytes.Equal(got, wire) {
		t.Fatalf("rename encoder:\n got %x\nwant %x", got, wire)
	}
	req, _ = ParseRequest(wire)
	got, err := DecodeRenameRequest(req.Payload)
	if err != nil || string(got.OldName.Name) != "share\x00old" || string(got.NewName.Name) != "share\x00new" {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestParseRequestRules(t *testing.T) {
	if _, err := ParseRequest(nil); !errors.Is(err, ErrNoReply) {
		t.Errorf("empty ping: %v", err)
	}
	if _, err := ParseRequest(AppendLegacyHeader(nil, 1, 50)); !errors.Is(err, ErrNoReply) {
		t.Errorf("legacy op 50: %v", err)
	}
	v1 := AppendV1SearchOpen(nil, 3, nil)
	if r, err := ParseRequest(v1); err != nil || r.Kind != KindV1 || r.Op != OpSearchOpen || len(r.Payload) != len(v1) {
		t.Errorf("v1: %+v %v", r, err)
	}
	good := AppendRequestV4(nil, 1, OpGetattrV3, 0, AppendHintsRequest(nil, 0, PathName(nil)))
	for name, mut := range map[string]func([]byte) []byte{
		"short":         func(b []byte) []byte { return b[:40] },
		"version 0":     func(b []byte) []byte { b[0] = 0; return b },
		"size past end": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1000); return b },
		"size < header": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 20); return b },
		"header too big": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 60)
			binary.LittleEndian.PutUint32(b[8:], 50)
			return b
		},
	} {
		b := mut(bytes.Clone(good))
		if _, err := ParseRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A reply carrying flags must carry REPLY.
	r := AppendReply(nil, Request{Kind: KindV4, ID: 1, Op: OpGetattrV3}, 0, StatusSuccess, nil)
	binary.LittleEndian.PutUint32(r[28:], PacketFlagRequest)
	if _, err := ParseReply(r); !errors.Is(err, ErrMalformed) {
		t.Errorf("reply with REQUEST flag: %v", err)
	}
}

func TestCPName(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "share": "share", "/share/": "share", "//a///b/": "a\x00b", "a/b/c": "a\x00b\x00c",
	} {
		if got := string(CPName(in)); got != want {
			t.Errorf("CPName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"a\x00", "\x00a", "a\x00\x00b", "a\x00..", ".", "a\x00.\x00b", "a\x00\xff"} {
		if _, err := ParseCPName([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCPName(%q) accepted", bad)
		}
	}
	if c, err := ParseCPName(nil); err != nil || c != nil {
		t.Errorf("root: %v %v", c, err)
	}
	if got := SymlinkTarget("../a//b/"); string(got) != "..\x00a\x00\x00b\x00" || SymlinkTargetString(got) != "../a//b/" {
		t.Errorf("SymlinkTarget %q", got)
	}
}

// TestEscapeGolden checks Escape and Unescape against the vectors in
// testdata/names.golden, worked from open-vm-tools' escaping rules and
// checked end to end against Debian's vmhgfs-fuse (internal/e2e
// TestHGFSAwkwardNames).
func TestEscapeGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/names.golden")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for l := range strings.SplitSeq(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		g, w, ok := strings.Cut(l, "\t")
		guest, err1 := strconv.Unquote(g)
		wire, err2 := strconv.Unquote(w)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("bad line %q", l)
		}
		n++
		if got := Unescape(guest); got != wire {
			t.Errorf("Unescape(%q) = %q, want %q", guest, got, wire)
		}
		if got := Escape(wire); got != guest {
			t.Errorf("Escape(%q) = %q, want %q", wire, got, guest)
		}
		if !CanonicalName(guest) {
			t.Errorf("%q not canonical", guest)
		}
	}
	if n < 20 {
		t.Fatalf("only %d vectors", n)
	}
	// Names that are not the escaped form of any host name.
	for _, s := range []string{"]]%", "a]]%"} {
		if CanonicalName(s) {
			t.Errorf("%q canonical (it reaches the host as %q, listed as %q)", s, Unescape(s), Escape(Unescape(s)))
		}
	}
	// A guest name with an escaped slash is one host component.
	if got := string(CPName("s/a!%b/c")); got != "s\x00a/b\x00c" {
		t.Errorf("CPName = %q", got)
	}
	if c, err := ParseCPName([]byte("s\x00a/b")); err != nil || len(c) != 2 || c[1] != "a!%b" {
		t.Errorf("ParseCPName = %q %v", c, err)
	}
}

// FuzzEscape: every name a Linux host can store (any bytes but NUL and
// "/") round-trips through the wire: Escape(Unescape(n)) == n, or the
// client refuses n (not canonical); every wire name round-trips through
// the guest: Unescape(Escape(w)) == w, and Escape leaves no "/".
func FuzzEscape(f *testing.F) {
	b, err := os.ReadFile("testdata/names.golden")
	if err != nil {
		f.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if g, w, ok := strings.Cut(l, "\t"); ok && l[0] != '#' {
			gs, _ := strconv.Unquote(g)
			ws, _ := strconv.Unquote(w)
			f.Add(gs)
			f.Add(ws)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := Unescape(Escape(s)); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, got)
		}
		if strings.Contains(Escape(s), "/") {
			t.Fatalf("Escape(%q) keeps a slash", s)
		}
		if !strings.ContainsAny(s, "/\x00") && CanonicalName(s) {
			if got := Escape(Unescape(s)); got != s {
				t.Fatalf("canonical %q comes back as %q", s, got)
			}
		}
		if CanonicalName(Escape(s)) != true {
			t.Fatalf("Escape(%q) = %q is not canonical", s, Escape(s))
		}
	})
}

func TestNTTime(t *testing.T) {
	if NTTime(time.Unix(0, 0)) != 116444736000000000 {
		t.Fatal("epoch")
	}
	tm := time.Date(2024, 2, 29, 12, 34, 56, 789012300, time.UTC)
	if got := TimeFromNT(NTTime(tm)); !got.Equal(tm) {
		t.Fatalf("round trip %v != %v", got, tm)
	}
	// 100 ns resolution: the last two digits of nanoseconds are lost.
	if got := TimeFromNT(NTTime(time.Unix(5, 199))); got.Nanosecond() != 100 {
		t.Fatalf("truncation: %v", got)
	}
	if !TimeFromNT(5).Equal(time.Unix(0, 0)) || NTTime(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)) != 0 {
		t.Fatal("clamping")
	}
}

func TestAttrPerm(t *testing.T) {
	var a Attr
	a.SetPerm(0o4751)
	if a.Perm() != 0o4751 {
		t.Fatalf("%o", a.Perm())
	}
	// A Windows host: owner bits only.
	w := Attr{Mask: AttrValidOwnerPerms, OwnerPerms: 5}
	if w.Perm() != 0o555 {
		t.Fatalf("owner-only %o", w.Perm())
	}
	back, err := DecodeAttr(a.Append(nil))
	if err != nil || back != a {
		t.Fatalf("round trip %+v %v", back, err)
	}
}

func TestSearchReadMany(t *testing.T) {
	in := []DirEntry{{Name: []byte("a")}, {Name: []byte("longer-name"), Attr: Attr{Mask: AttrValidSize, Size: 9}}, {Name: []byte("c")}}
	p := AppendSearchReadReply(nil, in)
	got, done, err := DecodeSearchReadReply(p)
	if err != nil || done || len(got) != 3 || string(got[1].Name) != "longer-name" || got[1].Attr.Size != 9 {
		t.Fatalf("%+v %v %v", got, done, err)
	}
	// A next offset pointing past the data is refused.
	binary.LittleEndian.PutUint32(p[SearchReadReplyHead:], 1<<20)
	if _, _, err := DecodeSearchReadReply(p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad next offset: %v", err)
	}
	// A count larger than the data could hold is refused up front.
	binary.LittleEndian.PutUint64(p, 1<<40)
	if _, _, err := DecodeSearchReadReply(p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad count: %v", err)
	}
}

func TestReadWriteReplyBounds(t *testing.T) {
	p := AppendReadReply(nil, []byte("abc"))
	if d, err := DecodeReadReply(p, 3); err != nil || string(d) != "abc" {
		t.Fatal(d, err)
	}
	if _, err := DecodeReadReply(p, 2); !errors.Is(err, ErrMalformed) {
		t.Fatal("a reply larger than asked must be refused")
	}
	if _, err := DecodeReadReply(p[:13], 3); !errors.Is(err, ErrMalformed) {
		t.Fatal("truncated data must be refused")
	}
	if _, err := DecodeWriteReply(AppendWriteReply(nil, 10), 5); !errors.Is(err, ErrMalformed) {
		t.Fatal("more written than sent must be refused")
	}
}

// decodeRequestPayload runs the decoder a host would run for op.
func decodeRequestPayload(op Op, p []byte) {
	switch op {
	case OpCreateSessionV4:
		DecodeCreateSessionRequest(p)
	case OpOpenV3:
		DecodeOpenRequest(p)
	case OpReadV3:
		DecodeReadRequest(p)
	case OpWriteV3:
		DecodeWriteRequest(p)
	case OpCloseV3, OpSearchCloseV3:
		DecodeHandleRequest(p)
	case OpSearchOpenV3, OpQueryVolumeInfoV3:
		DecodeNameRequest(p)
	case OpSearchReadV3:
		DecodeSearchReadRequest(p)
	case OpGetattrV3, OpDeleteFileV3, OpDeleteDirV3:
		if _, n, err := DecodeHintsRequest(p); err == nil {
			ParseCPName(n.Name)
		}
	case OpSetattrV3:
		DecodeSetattrRequest(p)
	case OpCreateDirV3:
		DecodeCreateDirRequest(p)
	case OpRenameV3:
		DecodeRenameRequest(p)
	case OpCreateSymlinkV3:
		DecodeSymlinkRequest(p)
	case OpSearchOpen:
		DecodeV1SearchOpen(p)
	case OpSearchRead:
		DecodeV1SearchRead(p)
	case OpSearchClose:
		DecodeV1Handle(p)
	}
}

// FuzzParseRequest feeds arbitrary packets through the host's decoding
// path: framing, then the op's request decoder. Nothing may panic, and
// every payload returned must lie inside the packet.
func FuzzParseRequest(f *testing.F) {
	for _, name := range goldenFiles(f) {
		f.Add(testutil.ReadHex(f, name))
	}
	for _, g := range goldenPairs(f) {
		f.Add(g.req)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		req, err := ParseRequest(p)
		if err != nil {
			return
		}
		if len(req.Payload) > len(p) {
			t.Fatalf("payload of %d bytes from a %d-byte packet", len(req.Payload), len(p))
		}
		decodeRequestPayload(req.Op, req.Payload)
		AppendReply(nil, req, 0, StatusProtocolError, nil)
	})
}

// FuzzParseReply feeds arbitrary replies through every client decoder.
func FuzzParseReply(f *testing.F) {
	for _, name := range goldenFiles(f) {
		f.Add(testutil.ReadHex(f, name), uint32(100))
	}
	for _, g := range goldenPairs(f) {
		f.Add(g.reply, uint32(4096))
	}
	f.Fuzz(func(t *testing.T, p []byte, asked uint32) {
		r, err := ParseReply(p)
		if err != nil {
			return
		}
		q := r.Payload
		DecodeCreateSessionReply(q)
		DecodeOpenReply(q)
		if d, err := DecodeReadReply(q, asked); err == nil && uint32(len(d)) > asked {
			t.Fatalf("read reply of %d bytes for %d asked", len(d), asked)
		}
		if n, err := DecodeWriteReply(q, asked); err == nil && n > asked {
			t.Fatalf("write reply of %d for %d sent", n, asked)
		}
		DecodeHandleReply(q)
		DecodeGetattrReply(q)
		DecodeVolumeReply(q)
		if entries, _, err := DecodeSearchReadReply(q); err == nil {
			for _, e := range entries {
				ParseCPName(e.Name)
			}
		}
		DecodeV1SearchReadReply(p)
		DecodeV1Handle(p)
	})
}

// FuzzNames checks the name codecs: a name ParseCPName accepts, sent
// back as the guest would name it, is the same CP name.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"", "share\x00dir\x00f.txt", "a/b", "!%", "]]%", "..", "a\x00\x00b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if comps, err := ParseCPName(b); err == nil {
			if got := CPName(strings.Join(comps, "/")); !bytes.Equal(got, b) {
				t.Fatalf("CPName(ParseCPName(%q)) = %q", b, got)
			}
		}
		fn, rest, err := DecodeFileName(b)
		if err == nil && fn.Size()+len(rest) != len(b) {
			t.Fatalf("DecodeFileName consumed %d of %d with %d left", fn.Size(), len(b), len(rest))
		}
		DecodeAttr(b)
		DecodeAttrV1(b)
	})
}
