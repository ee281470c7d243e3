package hgfsd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

type hgfsTester struct {
	t   testing.TB
	h   *Server
	sid uint64
	id  uint32
}

func newHGFSTester(t testing.TB, shares ...ShareSpec) *hgfsTester {
	ht := &hgfsTester{t: t, h: New(Options{Shares: shares})}
	r := ht.call(hgfsproto.OpCreateSessionV4, hgfsproto.CreateSessionRequest{MaxPacketSize: 100000}.Append(nil))
	if r.Status != hgfsproto.StatusSuccess {
		t.Fatalf("create session: %v", r.Status)
	}
	cs, err := hgfsproto.DecodeCreateSessionReply(r.Payload)
	if err != nil || cs.MaxPacketSize != 100000 || cs.Flags&hgfsproto.SessionMaxPacketSizeValid == 0 {
		t.Fatalf("session reply %+v %v", cs, err)
	}
	ht.sid = cs.SessionID
	return ht
}

// call sends one V4 request through the RPCI handler, as the guest does.
func (ht *hgfsTester) call(op hgfsproto.Op, payload []byte) hgfsproto.Reply {
	ht.t.Helper()
	ht.id++
	pkt := hgfsproto.AppendRequestV4(nil, ht.id, op, ht.sid, payload)
	out := ht.h.RPCI(pkt)
	if !bytes.HasPrefix(out, []byte("1 ")) {
		ht.t.Fatalf("%v: rpc reply %q", op, out)
	}
	r, err := hgfsproto.ParseReply(out[2:])
	if err != nil || r.ID != ht.id {
		ht.t.Fatalf("%v: reply %+v %v", op, r, err)
	}
	return r
}

func name(p string) hgfsproto.FileName { return hgfsproto.PathName(hgfsproto.CPName(p)) }

func (ht *hgfsTester) getattr(p string) (hgfsproto.GetattrReply, hgfsproto.Status) {
	ht.t.Helper()
	r := ht.call(hgfsproto.OpGetattrV3, hgfsproto.AppendHintsRequest(nil, 0, name(p)))
	if r.Status != 0 {
		return hgfsproto.GetattrReply{}, r.Status
	}
	g, err := hgfsproto.DecodeGetattrReply(r.Payload)
	if err != nil {
		ht.t.Fatal(err)
	}
	return g, 0
}

func (ht *hgfsTester) open(p string, mode, flags uint32) (uint32, hgfsproto.Status) {
	ht.t.Helper()
	req := hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidMode | hgfsproto.OpenValidFlags | hgfsproto.OpenValidFileName | hgfsproto.OpenValidOwnerPerms,
		Mode: mode, Flags: flags, OwnerPerms: 6, Name: name(p)}
	r := ht.call(hgfsproto.OpOpenV3, req.Append(nil))
	if r.Status != 0 {
		return 0, r.Status
	}
	o, err := hgfsproto.DecodeOpenReply(r.Payload)
	if err != nil {
		ht.t.Fatal(err)
	}
	return o.Handle, 0
}

func (ht *hgfsTester) list(p string) []string {
	ht.t.Helper()
	r := ht.call(hgfsproto.OpSearchOpenV3, hgfsproto.AppendNameRequest(nil, name(p)))
	if r.Status != 0 {
		ht.t.Fatalf("search open %q: %v", p, r.Status)
	}
	sid, _ := hgfsproto.DecodeHandleReply(r.Payload)
	var names []string
	for off := uint32(0); ; {
		r := ht.call(hgfsproto.OpSearchReadV3, hgfsproto.SearchReadRequest{Search: sid, Offset: off}.Append(nil))
		es, done, err := hgfsproto.DecodeSearchReadReply(r.Payload)
		if err != nil || r.Status != 0 {
			ht.t.Fatalf("search read: %v %v", r.Status, err)
		}
		if done {
			break
		}
		if len(es) != 1 {
			ht.t.Fatalf("without the multiple flag the host sends one entry, got %d", len(es))
		}
		names = append(names, string(es[0].Name))
		off++
	}
	ht.call(hgfsproto.OpSearchCloseV3, hgfsproto.AppendHandleRequest(nil, sid))
	return names
}

func TestHGFSFileOps(t *testing.T) {
	dir := t.TempDir()
	ht := newHGFSTester(t, ShareSpec{Name: "s", Dir: dir})
	fh, st := ht.open("s/f", hgfsproto.OpenModeReadWrite, hgfsproto.OpenFlagCreateSafe)
	if st != 0 {
		t.Fatal(st)
	}
	if _, st := ht.open("s/f", hgfsproto.OpenModeReadWrite, hgfsproto.OpenFlagCreateSafe); st != hgfsproto.StatusFileExists {
		t.Fatalf("CREATE_SAFE on existing: %v", st)
	}
	w := ht.call(hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: fh, Offset: 3, Data: []byte("hello")}.Append(nil))
	if n, err := hgfsproto.DecodeWriteReply(w.Payload, 5); err != nil || n != 5 {
		t.Fatal(n, err)
	}
	ht.call(hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: fh, Flags: hgfsproto.WriteAppend, Data: []byte("!")}.Append(nil))
	r := ht.call(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: fh, Offset: 0, Size: 100}.Append(nil))
	if d, err := hgfsproto.DecodeReadReply(r.Payload, 100); err != nil || string(d) != "\x00\x00\x00hello!" {
		t.Fatalf("read %q %v", d, err)
	}
	ht.call(hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, fh))
	if r := ht.call(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: fh, Size: 1}.Append(nil)); r.Status != hgfsproto.StatusInvalidHandle {
		t.Fatalf("read after close: %v", r.Status)
	}
	g, st := ht.getattr("s/f")
	if st != 0 || g.Attr.Size != 9 || g.Attr.Type != hgfsproto.FileTypeRegular {
		t.Fatalf("getattr %+v %v", g.Attr, st)
	}
	// mkdir, symlink, rename over, readlink, delete.
	if r := ht.call(hgfsproto.OpCreateDirV3, hgfsproto.CreateDirRequest{Mask: 0x1F, OwnerPerms: 7, GroupPerms: 5, OtherPerms: 0, Name: name("s/d")}.Append(nil)); r.Status != 0 {
		t.Fatal(r.Status)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "d")); fi == nil || fi.Mode().Perm()&0o707 != 0o700 {
		t.Fatalf("mkdir mode %v, want rwx for the owner and nothing for others", fi.Mode())
	}
	if r := ht.call(hgfsproto.OpCreateSymlinkV3, hgfsproto.SymlinkRequest{Link: name("s/d/l"), Target: hgfsproto.FileName{Name: hgfsproto.SymlinkTarget("../f")}}.Append(nil)); r.Status != 0 {
		t.Fatal(r.Status)
	}
	if g, st := ht.getattr("s/d/l"); st != 0 || g.Attr.Type != hgfsproto.FileTypeSymlink || hgfsproto.SymlinkTargetString(g.SymlinkTarget) != "../f" {
		t.Fatalf("symlink attr %+v %q %v", g.Attr, g.SymlinkTarget, st)
	}
	os.WriteFile(filepath.Join(dir, "new"), []byte("new"), 0o644)
	if r := ht.call(hgfsproto.OpRenameV3, hgfsproto.RenameRequest{OldName: name("s/new"), NewName: name("s/f"), Hints: hgfsproto.RenameHintNoReplaceExisting}.Append(nil)); r.Status != hgfsproto.StatusFileExists {
		t.Fatalf("rename no-replace: %v", r.Status)
	}
	if r := ht.call(hgfsproto.OpRenameV3, hgfsproto.RenameRequest{OldName: name("s/new"), NewName: name("s/f")}.Append(nil)); r.Status != 0 {
		t.Fatal(r.Status)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "new" {
		t.Fatalf("rename over: %q", b)
	}
	if r := ht.call(hgfsproto.OpDeleteFileV3, hgfsproto.AppendHintsRequest(nil, 0, name("s/d"))); r.Status != hgfsproto.StatusFileExists {
		t.Fatalf("DELETE_FILE on a dir: %v", r.Status)
	}
	if r := ht.call(hgfsproto.OpDeleteDirV3, hgfsproto.AppendHintsRequest(nil, 0, name("s/d"))); r.Status != hgfsproto.StatusDirNotEmpty {
		t.Fatalf("rmdir non-empty: %v", r.Status)
	}
	got := ht.list("s")
	sort.Strings(got)
	if strings.Join(got, ",") != ".,..,d,f" {
		t.Fatalf("listing %v", got)
	}
	if ht.h.State().OpenSearches != 0 {
		t.Fatal("search leaked")
	}
	// SETATTR: size and times with full precision.
	a := hgfsproto.Attr{Mask: hgfsproto.AttrValidSize | hgfsproto.AttrValidWriteTime, Size: 1, WriteTime: 132223104001234567}
	if r := ht.call(hgfsproto.OpSetattrV3, hgfsproto.SetattrRequest{Hints: hgfsproto.AttrHintSetWriteTime, Attr: a, Name: name("s/f")}.Append(nil)); r.Status != 0 {
		t.Fatal(r.Status)
	}
	if g, _ := ht.getattr("s/f"); g.Attr.Size != 1 || g.Attr.WriteTime != 132223104001234567 {
		t.Fatalf("setattr: size %d mtime %d", g.Attr.Size, g.Attr.WriteTime)
	}
	// QUERY_VOLUME_INFO.
	r = ht.call(hgfsproto.OpQueryVolumeInfoV3, hgfsproto.AppendNameRequest(nil, name("s")))
	if free, total, err := hgfsproto.DecodeVolumeReply(r.Payload); err != nil || total == 0 || free > total {
		t.Fatalf("volume %d %d %v", free, total, err)
	}
}

func TestHGFSEscapes(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	dir := t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "abs"))
	os.Symlink("../"+filepath.Base(outside), filepath.Join(dir, "rel"))
	ht := newHGFSTester(t, ShareSpec{Name: "s", Dir: dir})
	for _, raw := range []string{"s\x00..\x00x", "s\x00.", "s\x00\x00secret", "s\x00"} {
		r := ht.call(hgfsproto.OpGetattrV3, hgfsproto.AppendHintsRequest(nil, 0, hgfsproto.PathName([]byte(raw))))
		if r.Status != hgfsproto.StatusInvalidName {
			t.Errorf("getattr %q: %v, want INVALID_NAME", raw, r.Status)
		}
	}
	// A slash inside a component is part of one name (stored escaped,
	// "a!%..!%..!%secret", as a Linux host does), never a separator.
	if r := ht.call(hgfsproto.OpGetattrV3, hgfsproto.AppendHintsRequest(nil, 0, hgfsproto.PathName([]byte("s\x00a/../../secret")))); r.Status != hgfsproto.StatusNoSuchFileOrDir {
		t.Errorf("getattr of a component with slashes: %v, want NO_SUCH_FILE_OR_DIR", r.Status)
	}
	for _, p := range []string{"s/abs/secret", "s/rel/secret"} {
		if _, st := ht.open(p, hgfsproto.OpenModeReadOnly, hgfsproto.OpenFlagOpen); st == 0 {
			t.Errorf("open %s escaped the share", p)
		}
		if _, st := ht.open(p, hgfsproto.OpenModeWriteOnly, hgfsproto.OpenFlagCreate); st == 0 {
			t.Errorf("create %s escaped the share", p)
		}
	}
	// A symlink created by the guest pointing outside is stored, but
	// following it through the share fails.
	ht.call(hgfsproto.OpCreateSymlinkV3, hgfsproto.SymlinkRequest{Link: name("s/out"), Target: hgfsproto.FileName{Name: hgfsproto.SymlinkTarget(outside + "/secret")}}.Append(nil))
	if _, st := ht.open("s/out", hgfsproto.OpenModeReadOnly, hgfsproto.OpenFlagOpen); st == 0 {
		t.Error("open through an absolute symlink escaped the share")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Fatal(err)
	}
}

func TestHGFSRootReadOnlyAndSessions(t *testing.T) {
	ro := t.TempDir()
	os.WriteFile(filepath.Join(ro, "f"), []byte("x"), 0o644)
	ht := newHGFSTester(t, ShareSpec{Name: "b", Dir: t.TempDir()}, ShareSpec{Name: "a", Dir: ro, ReadOnly: true}, ShareSpec{Name: "gone", Dir: "/nonexistent/dir"})
	if got := strings.Join(ht.list(""), ","); got != ".,..,a,b,gone" {
		t.Fatalf("root listing %s", got)
	}
	if g, st := ht.getattr(""); st != 0 || g.Attr.Type != hgfsproto.FileTypeDirectory || g.Attr.Perm() != 0o555 {
		t.Fatalf("root attr %+v %v", g.Attr, st)
	}
	if _, st := ht.getattr("gone"); st != hgfsproto.StatusGenericError {
		t.Fatalf("dangling share: %v", st)
	}
	if _, st := ht.open("a/f", hgfsproto.OpenModeWriteOnly, hgfsproto.OpenFlagOpen); st != hgfsproto.StatusAccessDenied {
		t.Fatalf("write open on ro share: %v", st)
	}
	if _, st := ht.open("a/f", hgfsproto.OpenModeReadOnly, hgfsproto.OpenFlagOpen); st != 0 {
		t.Fatalf("read open on ro share: %v", st)
	}
	if r := ht.call(hgfsproto.OpDeleteFileV3, hgfsproto.AppendHintsRequest(nil, 0, name("a/f"))); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("delete on ro share: %v", r.Status)
	}
	if r := ht.call(hgfsproto.OpRenameV3, hgfsproto.RenameRequest{OldName: name("b/x"), NewName: name("a/x")}.Append(nil)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("rename into ro share: %v", r.Status)
	}
	// Share disabled: gone from the root, names not found, handles invalid.
	fh, _ := ht.open("a/f", hgfsproto.OpenModeReadOnly, hgfsproto.OpenFlagOpen)
	ht.h.SetShareEnabled("a", false)
	if got := strings.Join(ht.list(""), ","); got != ".,..,b,gone" {
		t.Fatalf("root after disable %s", got)
	}
	if _, st := ht.getattr("a/f"); st != hgfsproto.StatusNoSuchFileOrDir {
		t.Fatalf("getattr on disabled share: %v", st)
	}
	if r := ht.call(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: fh, Size: 1}.Append(nil)); r.Status != hgfsproto.StatusInvalidHandle {
		t.Fatalf("handle on disabled share: %v", r.Status)
	}
	ht.h.SetShareEnabled("a", true)
	if _, st := ht.getattr("a/f"); st != 0 {
		t.Fatalf("getattr after re-enable: %v", st)
	}
	// Restart: the session is stale, a new one works.
	ht.h.Restart()
	if _, st := ht.getattr("a/f"); st != hgfsproto.StatusStaleSession {
		t.Fatalf("after restart: %v", st)
	}
	// Disabled: the RPC itself fails.
	ht.h.SetEnabled(false)
	if out := ht.h.RPCI(nil); string(out) != ReplyDisabled {
		t.Fatalf("disabled ping %q", out)
	}
	ht.h.SetEnabled(true)
	if out := ht.h.RPCI(nil); !bytes.HasPrefix(out, []byte("1 ")) {
		t.Fatalf("ping %q", out)
	}
}

func TestHGFSLegacyAndV1(t *testing.T) {
	ht := newHGFSTester(t, ShareSpec{Name: "x", Dir: t.TempDir()}, ShareSpec{Name: "y", Dir: t.TempDir()})
	// Legacy V3 GETATTR in the default session.
	pkt := hgfsproto.AppendHintsRequest(hgfsproto.AppendLegacyHeader(nil, 5, uint32(hgfsproto.OpGetattrV3)), 0, name("x"))
	out := ht.h.Dispatch(pkt)
	r, err := hgfsproto.ParseReply(out)
	if err != nil || r.V4 || r.ID != 5 || r.Status != 0 {
		t.Fatalf("legacy reply %+v %v", r, err)
	}
	// vmware-hgfsclient's V1 listing.
	out = ht.h.Dispatch(hgfsproto.AppendV1SearchOpen(nil, 0, nil))
	sid, err := hgfsproto.DecodeV1Handle(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for off := uint32(0); ; off++ {
		_, n, err := hgfsproto.DecodeV1SearchReadReply(ht.h.Dispatch(hgfsproto.AppendV1SearchRead(nil, 0, sid, off)))
		if err != nil {
			t.Fatal(err)
		}
		if len(n) == 0 {
			break
		}
		names = append(names, string(n))
	}
	if strings.Join(names, ",") != ".,..,x,y" {
		t.Fatalf("v1 listing %v", names)
	}
	out = ht.h.Dispatch(hgfsproto.AppendV1Handle(nil, 0, uint32(hgfsproto.OpSearchClose), sid))
	if lh, _ := hgfsproto.ParseLegacyHeader(out); lh.Word != 0 {
		t.Fatalf("v1 close status %d", lh.Word)
	}
	// An unknown V4 op gets PROTOCOL_ERROR.
	if r := ht.call(hgfsproto.OpSetWatchV4, nil); r.Status != hgfsproto.StatusProtocolError {
		t.Fatalf("unknown op: %v", r.Status)
	}
}

// TestHGFSSearchOneEntry: like a host, the server answers SEARCH_READ_V3
// with one entry per reply whatever the request's flags, and the end with
// count 1 and an empty name.
func TestHGFSSearchOneEntry(t *testing.T) {
	dir := t.TempDir()
	for i := range 30 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%02d", i)), nil, 0o644)
	}
	ht := newHGFSTester(t, ShareSpec{Name: "s", Dir: dir})
	r := ht.call(hgfsproto.OpSearchOpenV3, hgfsproto.AppendNameRequest(nil, name("s")))
	sid, _ := hgfsproto.DecodeHandleReply(r.Payload)
	total := 0
	for off := uint32(0); ; off++ {
		r := ht.call(hgfsproto.OpSearchReadV3, hgfsproto.SearchReadRequest{Search: sid, Offset: off, Flags: ^uint32(0)}.Append(nil))
		es, done, err := hgfsproto.DecodeSearchReadReply(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if len(es) != 1 {
			t.Fatalf("offset %d: %d entries in one reply", off, len(es))
		}
		total++
	}
	if total != 32 {
		t.Fatalf("%d entries, want 30 and . and ..", total)
	}
}

func TestHGFSFaults(t *testing.T) {
	ht := newHGFSTester(t, ShareSpec{Name: "s", Dir: t.TempDir()})
	ht.h.InjectFault("truncate", 1, "")
	pkt := hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpGetattrV3, ht.sid, hgfsproto.AppendHintsRequest(nil, 0, name("s")))
	out := ht.h.RPCI(pkt)
	if _, err := hgfsproto.ParseReply(out[2:]); err == nil {
		t.Fatal("truncated reply parsed")
	}
	ht.h.InjectFault("short", 1, "GETATTR_V3")
	out = ht.h.RPCI(pkt)
	r, err := hgfsproto.ParseReply(out[2:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hgfsproto.DecodeGetattrReply(r.Payload); err == nil {
		t.Fatal("short payload decoded")
	}
	if _, st := ht.getattr("s"); st != 0 {
		t.Fatal("fault outlived its count")
	}
	ht.h.SetNoSessions(true)
	r = ht.call(hgfsproto.OpCreateSessionV4, hgfsproto.CreateSessionRequest{}.Append(nil))
	if r.Status != hgfsproto.StatusProtocolError {
		t.Fatalf("nosessions: %v", r.Status)
	}
}

func TestParseShare(t *testing.T) {
	s, err := ParseShare("docs=/tmp/x,ro")
	if err != nil || s.Name != "docs" || s.Dir != "/tmp/x" || !s.ReadOnly {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"x", "=/a", "a=", "a/b=/x", "..=/x", "a=/x,rx"} {
		if _, err := ParseShare(bad); err == nil {
			t.Errorf("ParseShare(%q) accepted", bad)
		}
	}
	var f ShareFlag
	if f.Set("a=/x") != nil || f.Set("a=/y") == nil {
		t.Fatal("duplicate share names must be refused")
	}
}

// FuzzHGFSDispatch feeds arbitrary guest packets to the server: it must
// answer every one without panicking and never touch anything outside
// its share.
func FuzzHGFSDispatch(f *testing.F) {
	f.Add(hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpGetattrV3, 0, hgfsproto.AppendHintsRequest(nil, 0, name("s/x"))))
	f.Add(hgfsproto.AppendHintsRequest(hgfsproto.AppendLegacyHeader(nil, 5, uint32(hgfsproto.OpGetattrV3)), 0, name("s")))
	f.Add(hgfsproto.AppendV1SearchOpen(nil, 0, nil))
	f.Add(hgfsproto.OpenRequest{Mask: 3, Mode: 2, Flags: 2, Name: name("s/new")}.Append(hgfsproto.AppendLegacyHeader(nil, 5, uint32(hgfsproto.OpOpenV3))))
	// Every request Debian's vmhgfs-fuse sent in the golden capture.
	for _, r := range goldenMsgs(f, "vmhgfs-fuse-12.2.0.jsonl") {
		if b, err := r.Bytes(); err == nil && r.From == "guest" && bytes.HasPrefix(b, []byte("f ")) {
			f.Add(b[2:])
		}
	}
	// The share sits deep below outer, so that a name escaping it by any
	// number of ".." levels up to the depth lands in outer's skeleton,
	// where anything new is seen; escapes deeper than that are
	// FuzzHGFSResolve's (every name resolves inside the share).
	outer := f.TempDir()
	const depth = 12
	skeleton := []string{outer}
	for i := range depth {
		skeleton = append(skeleton, filepath.Join(skeleton[i], fmt.Sprint(i)))
	}
	dir := filepath.Join(skeleton[depth], "share")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	h := New(Options{Shares: []ShareSpec{{Name: "s", Dir: dir}}})
	f.Fuzz(func(t *testing.T, p []byte) {
		h.Dispatch(p)
		for i, d := range skeleton {
			want := "share"
			if i < depth {
				want = fmt.Sprint(i)
			}
			ents, _ := os.ReadDir(d)
			if len(ents) != 1 || ents[0].Name() != want || !ents[0].IsDir() {
				t.Fatalf("something was created outside the share, in %s: %v", d, ents)
			}
		}
	})
}

// FuzzHGFSResolve: every CP name the server accepts resolves to a path
// inside its share, at any depth: joined to the share's directory and
// cleaned, it is the directory or below it.
func FuzzHGFSResolve(f *testing.F) {
	for _, p := range []string{"s", "s/x", "s/a/b/c", "s/../x", "s/a/../../x", "s/./x", "x/y"} {
		f.Add(hgfsproto.CPName(p))
	}
	f.Add([]byte("s\x00..\x00..\x00etc"))
	f.Add([]byte("s\x00a\x00..\x00..\x00..\x00..\x00x"))
	f.Add([]byte("s\x00/..\x00x"))
	dir := f.TempDir()
	h := New(Options{Shares: []ShareSpec{{Name: "s", Dir: dir}}})
	f.Fuzz(func(t *testing.T, cp []byte) {
		sh, rel, st := h.resolve(hgfsproto.PathName(cp))
		if st != hgfsproto.StatusSuccess || sh == nil {
			return
		}
		if !filepath.IsLocal(rel) && rel != "." {
			t.Fatalf("%q resolves to %q, not a local path", cp, rel)
		}
		full := filepath.Clean(filepath.Join(dir, rel))
		if full != dir && !strings.HasPrefix(full, dir+string(filepath.Separator)) {
			t.Fatalf("%q resolves to %s, outside the share %s", cp, full, dir)
		}
	})
}
