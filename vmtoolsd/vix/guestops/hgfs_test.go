package guestops

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

func hgfsDo(t *testing.T, tr Transfer, op hgfsproto.Op, payload []byte) hgfsproto.Reply {
	t.Helper()
	r, err := hgfsproto.ParseReply(HGFS(hgfsproto.AppendRequestV4(nil, 1, op, 0, payload), tr))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHGFSServe(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("hello"), 0o644)
	name := hgfsproto.PathName(hgfsproto.CPName("root/" + f))
	ro := Transfer{Path: f, Handle: 9}
	r := hgfsDo(t, ro, hgfsproto.OpOpenV3, hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidFileName, Name: name}.Append(nil))
	if o, _ := hgfsproto.DecodeOpenReply(r.Payload); r.Status != 0 || o.Handle != 9 {
		t.Fatalf("open: %v %+v", r.Status, o)
	}
	r = hgfsDo(t, ro, hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: 9, Offset: 1, Size: 1 << 30}.Append(nil))
	if b, err := hgfsproto.DecodeReadReply(r.Payload, 1<<30); err != nil || string(b) != "ello" {
		t.Fatalf("read: %q %v", b, err)
	}
	// Writing needs a writable transfer.
	w := hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidFileName, Name: name, Mode: hgfsproto.OpenModeWriteOnly, Flags: hgfsproto.OpenFlagCreateEmpty}.Append(nil)
	if r := hgfsDo(t, ro, hgfsproto.OpOpenV3, w); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("write open on a read transfer: %v", r.Status)
	}
	if r := hgfsDo(t, ro, hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: 9, Data: []byte("x")}.Append(nil)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("write on a read transfer: %v", r.Status)
	}
	rw := Transfer{Path: f, Write: true, Handle: 9}
	if r := hgfsDo(t, rw, hgfsproto.OpOpenV3, w); r.Status != 0 {
		t.Fatalf("truncating open: %v", r.Status)
	}
	hgfsDo(t, rw, hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: 9, Offset: 2, Data: []byte("xy")}.Append(nil))
	if b, _ := os.ReadFile(f); string(b) != "\x00\x00xy" {
		t.Fatalf("after write: %q", b)
	}
	// A symlink swapped in after the initiate is not followed.
	os.Remove(f)
	os.Symlink("/etc/passwd", f)
	if r := hgfsDo(t, ro, hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: 9, Size: 10}.Append(nil)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("read through a symlink: %v", r.Status)
	}
	if r := hgfsDo(t, ro, hgfsproto.OpSearchOpenV3, nil); r.Status != hgfsproto.StatusOperationNotSupported {
		t.Fatalf("search open: %v", r.Status)
	}
	if r := hgfsDo(t, ro, hgfsproto.OpReadV3, []byte{1}); r.Status != hgfsproto.StatusProtocolError {
		t.Fatalf("short read request: %v", r.Status)
	}
}

// A transfer server keeps the file it opened: a symlink swapped in
// after the open is never followed, and a close releases the handle.
func TestTransferServerKeepsFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("original"), 0o644)
	s := NewTransferServer(f, false)
	defer s.Close()
	do := func(op hgfsproto.Op, payload []byte) hgfsproto.Reply {
		t.Helper()
		r, err := hgfsproto.ParseReply(s.Serve(5, hgfsproto.AppendRequestV4(nil, 1, op, 0, payload)))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	name := hgfsproto.PathName(hgfsproto.CPName("root/" + f))
	if r := do(hgfsproto.OpOpenV3, hgfsproto.OpenRequest{Name: name}.Append(nil)); r.Status != hgfsproto.StatusProtocolError {
		t.Fatalf("open without OpenValidFileName: %v", r.Status)
	}
	if r := do(hgfsproto.OpOpenV3, hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidFileName, Name: name}.Append(nil)); r.Status != 0 {
		t.Fatalf("open: %v", r.Status)
	}
	os.Rename(f, f+".old")
	os.Symlink("/etc/passwd", f)
	r := do(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: 5, Size: 100}.Append(nil))
	if b, err := hgfsproto.DecodeReadReply(r.Payload, 100); r.Status != 0 || err != nil || string(b) != "original" {
		t.Fatalf("read after the swap: %v %q %v", r.Status, b, err)
	}
	if r := do(hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, 5)); r.Status != 0 || len(s.fds) != 0 {
		t.Fatalf("close: %v, %d open", r.Status, len(s.fds))
	}
	if r := do(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: 5, Size: 100}.Append(nil)); r.Status != hgfsproto.StatusAccessDenied {
		t.Fatalf("read through the symlink after close: %v", r.Status)
	}
}

func FuzzHGFS(f *testing.F) {
	f.Add(hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpReadV3, 0, hgfsproto.ReadRequest{Size: 4}.Append(nil)))
	f.Add(hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpWriteV3, 0, hgfsproto.WriteRequest{Data: []byte("x")}.Append(nil)))
	f.Add(hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpOpenV3, 0, hgfsproto.OpenRequest{}.Append(nil)))
	f.Fuzz(func(t *testing.T, p []byte) {
		path := filepath.Join(t.TempDir(), "f")
		r := HGFS(p, Transfer{Path: path, Write: true})
		if r == nil {
			return
		}
		if _, err := hgfsproto.ParseReply(r); err != nil {
			t.Fatalf("reply %x: %v", r, err)
		}
	})
}
