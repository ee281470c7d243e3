package vix

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// hgfsCall sends one HGFS request inside opcode 84 and returns the
// parsed HGFS reply (or the VIX error).
func hgfsCall(t *testing.T, s *Service, user, pw string, op hgfsproto.Op, payload []byte) (vixproto.Error, hgfsproto.Reply) {
	t.Helper()
	pkt := hgfsproto.AppendRequestV4(nil, 7, op, 1, payload)
	body := (&vixproto.HgfsPacket{Packet: pkt}).Encode()
	msg, err := vixproto.NewRequest(vixproto.OpHgfsSendPacket, vixproto.FlagGuestReturnsBinary, 0, 1, body, vixproto.NamePasswordCred(user, []byte(pw)))
	if err != nil {
		t.Fatal(err)
	}
	e, p := relay(t, s, msg)
	if e != 0 {
		return e, hgfsproto.Reply{}
	}
	r, err := hgfsproto.ParseReply([]byte(p))
	if err != nil {
		t.Fatalf("hgfs reply %q: %v", p, err)
	}
	return 0, r
}

func openReq(path string, write bool) []byte {
	o := hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidMode | hgfsproto.OpenValidFlags | hgfsproto.OpenValidFileName, Name: hgfsproto.PathName(hgfsproto.CPName("/root" + path))}
	if write {
		o.Mode, o.Flags = hgfsproto.OpenModeWriteOnly, hgfsproto.OpenFlagCreateEmpty
	}
	return o.Append(nil)
}

// startUpload initiates an upload to dst as user, opens a session and
// the file for writing, and returns the open reply.
func startUpload(t *testing.T, s *Service, user, dst string) hgfsproto.OpenReply {
	t.Helper()
	to := (&vixproto.FileOp{Op: vixproto.OpInitiateTransferTo, Path: dst}).Encode()
	if e, _ := relay(t, s, request(t, vixproto.OpInitiateTransferTo, 1, to, user, "right")); e != 0 {
		t.Fatalf("initiate to: %v", e)
	}
	if e, r := hgfsCall(t, s, user, "right", hgfsproto.OpCreateSessionV4, hgfsproto.CreateSessionRequest{MaxPacketSize: 0xF800}.Append(nil)); e != 0 || r.Status != 0 {
		t.Fatalf("session: %v %v", e, r.Status)
	}
	e, r := hgfsCall(t, s, user, "right", hgfsproto.OpOpenV3, openReq(dst, true))
	if e != 0 || r.Status != 0 {
		t.Fatalf("open for write: %v %v", e, r.Status)
	}
	or, err := hgfsproto.DecodeOpenReply(r.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return or
}

func TestTransferRoundTrip(t *testing.T) {
	s := newService(t)
	user := currentUser(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "up")
	or := startUpload(t, s, user, dst)
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	for off := 0; off < len(data); off += 0xE000 {
		chunk := data[off:min(off+0xE000, len(data))]
		e, r := hgfsCall(t, s, user, "right", hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: or.Handle, Offset: uint64(off), Data: chunk}.Append(nil))
		if e != 0 || r.Status != 0 {
			t.Fatalf("write at %d: %v %v", off, e, r.Status)
		}
		if n, _ := hgfsproto.DecodeWriteReply(r.Payload, uint32(len(chunk))); int(n) != len(chunk) {
			t.Fatalf("wrote %d of %d", n, len(chunk))
		}
	}
	if e, r := hgfsCall(t, s, user, "right", hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, or.Handle)); e != 0 || r.Status != 0 {
		t.Fatalf("close: %v %v", e, r.Status)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatalf("uploaded %d bytes, want %d", len(got), len(data))
	}
	// A closed handle is gone; a write on a read grant is refused.
	if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: or.Handle, Data: []byte("x")}.Append(nil)); r.Status != hgfsproto.StatusInvalidHandle {
		t.Fatalf("write after close: %v", r.Status)
	}

	from := (&vixproto.ListFiles{Path: dst}).Encode()
	e, fxi := relay(t, s, request(t, vixproto.OpInitiateTransferFrom, 1, from, user, "right"))
	if f := vixproto.ParseFileInfos(fxi); e != 0 || len(f) != 1 || f[0].Size != int64(len(data)) {
		t.Fatalf("initiate from: %v %q", e, fxi)
	}
	if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpOpenV3, openReq(filepath.Join(dir, "other"), false)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("open of an ungranted path: %v", r.Status)
	}
	_, r := hgfsCall(t, s, user, "right", hgfsproto.OpOpenV3, openReq(dst, false))
	or, _ = hgfsproto.DecodeOpenReply(r.Payload)
	var got []byte
	for {
		_, r := hgfsCall(t, s, user, "right", hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: or.Handle, Offset: uint64(len(got)), Size: 0xF000}.Append(nil))
		if r.Status != 0 {
			t.Fatalf("read: %v", r.Status)
		}
		b, err := hgfsproto.DecodeReadReply(r.Payload, 0xF000)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, want %d", len(got), len(data))
	}
	// The download grant does not allow writing through a read handle.
	if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: or.Handle, Data: []byte("x")}.Append(nil)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("write on a read handle: %v", r.Status)
	}
	// 84 is a legacy op: a wrong password is 3015.
	if e, _ := hgfsCall(t, s, user, "wrong", hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: or.Handle, Size: 10}.Append(nil)); e != vixproto.ErrGuestUserPermissions {
		t.Fatalf("wrong password: %v", e)
	}
}

func TestInitiateChecks(t *testing.T) {
	s := newService(t)
	user := currentUser(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	os.Symlink(f, filepath.Join(dir, "l"))
	to := func(path string, opts int32, overwrite bool) vixproto.Error {
		b := (&vixproto.FileOp{Op: vixproto.OpInitiateTransferTo, Path: path, Options: opts, Flag: overwrite}).Encode()
		e, _ := relay(t, s, request(t, vixproto.OpInitiateTransferTo, 1, b, user, "right"))
		return e
	}
	from := func(path string) vixproto.Error {
		e, _ := relay(t, s, request(t, vixproto.OpInitiateTransferFrom, 1, (&vixproto.ListFiles{Path: path}).Encode(), user, "right"))
		return e
	}
	cases := []struct {
		name      string
		got, want vixproto.Error
	}{
		{"to exists", to(f, 0, false), vixproto.ErrFileAlreadyExists},
		{"to overwrite", to(f, 0, true), 0},
		{"to hidden", to(filepath.Join(dir, "n"), vixproto.AttrSetHidden, false), vixproto.ErrInvalidArg},
		{"to symlink", to(filepath.Join(dir, "l"), 0, true), vixproto.ErrInvalidArg},
		{"to dir", to(dir, 0, true), vixproto.ErrNotAFile},
		{"to bad parent", to(f+"/x", 0, false), vixproto.ErrFileNameInvalid},
		{"to new", to(filepath.Join(dir, "n"), 0, false), 0},
		{"from missing", from(filepath.Join(dir, "n")), vixproto.ErrFileNotFound},
		{"from dir", from(dir), vixproto.ErrNotAFile},
		{"from symlink", from(filepath.Join(dir, "l")), vixproto.ErrInvalidArg},
		{"from file", from(f), 0},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// authLog makes the test helper log every password it checks and
// returns a reader of that log's lines.
func authLog(t *testing.T) func() []string {
	log := filepath.Join(t.TempDir(), "auth.log")
	t.Setenv("VIX_TEST_AUTHLOG", log)
	return func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
}

func (s *Service) liveHelpers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xfer.live
}

// One helper serves a whole transfer: PAM runs once, at the initiate;
// a packet with another password is authenticated (and refused) on its
// own without disturbing the transfer; closing the file ends the
// helper, and a packet after that authenticates afresh.
func TestTransferOneHelper(t *testing.T) {
	s := newService(t)
	auths := authLog(t)
	user := currentUser(t)
	dst := filepath.Join(t.TempDir(), "up")
	or := startUpload(t, s, user, dst)
	chunk := bytes.Repeat([]byte{'z'}, 0xE000)
	for i := range 20 {
		if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: or.Handle, Offset: uint64(i * len(chunk)), Data: chunk}.Append(nil)); r.Status != 0 {
			t.Fatalf("write %d: %v", i, r.Status)
		}
	}
	if got := auths(); len(got) != 1 || s.liveHelpers() != 1 {
		t.Fatalf("after initiate, session, open and 20 writes: PAM saw %q, %d helpers live; want one of each", got, s.liveHelpers())
	}
	// Another password is not the authenticated one: PAM decides.
	if e, _ := hgfsCall(t, s, user, "wrong", hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: or.Handle, Data: []byte("x")}.Append(nil)); e != vixproto.ErrGuestUserPermissions {
		t.Fatalf("write with a wrong password: %v", e)
	}
	if got := auths(); len(got) != 2 || got[1] != "wrong" {
		t.Fatalf("PAM saw %q", got)
	}
	if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, or.Handle)); r.Status != 0 {
		t.Fatalf("close: %v", r.Status)
	}
	testutil.WaitFor(t, 10*time.Second, "the transfer helper to end after close", func() bool { return s.liveHelpers() == 0 })
	if st, err := os.Stat(dst); err != nil || st.Size() != 20*0xE000 {
		t.Fatalf("uploaded: %v %v", st, err)
	}
	if e, r := hgfsCall(t, s, user, "right", hgfsproto.OpDestroySessionV4, hgfsproto.AppendReserved(nil)); e != 0 || r.Status != 0 || len(auths()) != 2 {
		t.Fatalf("destroy: %v %v, PAM saw %q", e, r.Status, auths())
	}
	// A new open of the grant authenticates again.
	if _, r := hgfsCall(t, s, user, "right", hgfsproto.OpOpenV3, openReq(dst, false)); r.Status != 0 || len(auths()) != 3 {
		t.Fatalf("reopen: %v, PAM saw %q", r.Status, auths())
	}
}

// An idle transfer helper ends; the next packet of the transfer starts
// one that authenticates it, and the open handle still reads.
func TestTransferHelperIdle(t *testing.T) {
	s := newService(t)
	s.TransferIdle = 100 * time.Millisecond
	auths := authLog(t)
	user := currentUser(t)
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("idle data"), 0o644)
	from := (&vixproto.ListFiles{Path: src}).Encode()
	if e, _ := relay(t, s, request(t, vixproto.OpInitiateTransferFrom, 1, from, user, "right")); e != 0 {
		t.Fatalf("initiate from: %v", e)
	}
	_, r := hgfsCall(t, s, user, "right", hgfsproto.OpOpenV3, openReq(src, false))
	or, _ := hgfsproto.DecodeOpenReply(r.Payload)
	testutil.WaitFor(t, 10*time.Second, "the idle helper to end", func() bool { return s.liveHelpers() == 0 })
	_, r = hgfsCall(t, s, user, "right", hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: or.Handle, Size: 100}.Append(nil))
	if b, err := hgfsproto.DecodeReadReply(r.Payload, 100); r.Status != 0 || err != nil || string(b) != "idle data" {
		t.Fatalf("read after idle: %v %q %v", r.Status, b, err)
	}
	if got := auths(); len(got) != 2 {
		t.Fatalf("PAM saw %q, want the initiate and the read", got)
	}
}
