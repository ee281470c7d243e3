package guestops

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

func do(t *testing.T, e *Env, op uint32, body []byte) Result {
	t.Helper()
	return e.Do(&vixproto.Request{Header: vixproto.Header{OpCode: op}, Body: body})
}

func TestListFilesPaging(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a1", "a2", "a3", "b1"} {
		os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644)
	}
	e := &Env{}
	list := func(p vixproto.ListFiles) vixproto.ListFilesResult {
		t.Helper()
		p.Path = dir
		r := do(t, e, vixproto.OpListFiles, p.Encode())
		if r.Err != 0 {
			t.Fatalf("list %+v: %v", p, r.Err)
		}
		return vixproto.ParseListFilesResult(string(r.Payload))
	}
	// "." and ".." come first and count.
	all := list(vixproto.ListFiles{MaxResults: 50})
	if len(all.Files) != 6 || all.Files[0].Name != "." || all.Files[1].Name != ".." || all.Remaining != 0 {
		t.Fatalf("all: %+v", all)
	}
	r := list(vixproto.ListFiles{MaxResults: 2, Pattern: "^a"})
	if len(r.Files) != 2 || r.Remaining != 1 {
		t.Fatalf("page 1: %+v", r)
	}
	r = list(vixproto.ListFiles{MaxResults: 2, Index: 2, Pattern: "^a"})
	if len(r.Files) != 1 || r.Remaining != 0 {
		t.Fatalf("page 2: %+v", r)
	}
	if r := list(vixproto.ListFiles{MaxResults: 0, Index: 1}); len(r.Files) != 0 || r.Remaining != 5 {
		t.Fatalf("maxResults 0: %+v", r)
	}
	bad := vixproto.ListFiles{Path: dir, MaxResults: 5, Pattern: "("}
	if r := do(t, e, vixproto.OpListFiles, bad.Encode()); r.Err != vixproto.ErrInvalidArg {
		t.Fatalf("bad regex: %v", r.Err)
	}
	one := vixproto.ListFiles{Path: filepath.Join(dir, "a1"), MaxResults: 5}
	r2 := do(t, e, vixproto.OpListFiles, one.Encode())
	f := vixproto.ParseListFilesResult(string(r2.Payload)).Files
	if len(f) != 1 || f[0].Name != one.Path || f[0].Size != 2 || f[0].Mode != syscall.S_IFREG|0o644 {
		t.Fatalf("single file: %+v", f)
	}
	missing := vixproto.ListFiles{Path: filepath.Join(dir, "nope"), MaxResults: 5}
	if r := do(t, e, vixproto.OpListFiles, missing.Encode()); r.Err != vixproto.ErrFileNotFound || r.Errno != uint32(syscall.ENOENT) {
		t.Fatalf("missing: %+v", r)
	}
}

func TestMoveTempAttrs(t *testing.T) {
	dir := t.TempDir()
	e := &Env{User: "u", TempBase: dir}
	src, dst := filepath.Join(dir, "s"), filepath.Join(dir, "d")
	os.WriteFile(src, nil, 0o644)
	os.WriteFile(dst, nil, 0o644)
	if r := do(t, e, vixproto.OpMoveFileEx, (&vixproto.Rename{Old: src, New: dst}).Encode()); r.Err != vixproto.ErrFileAlreadyExists {
		t.Fatalf("move onto a file without overwrite: %v", r.Err)
	}
	if r := do(t, e, vixproto.OpMoveFileEx, (&vixproto.Rename{Old: src, New: dst, Overwrite: true}).Encode()); r.Err != 0 {
		t.Fatalf("move with overwrite: %v", r.Err)
	}
	if r := do(t, e, vixproto.OpMoveDirectory, (&vixproto.Rename{Old: dst, New: src}).Encode()); r.Err != vixproto.ErrNotADirectory {
		t.Fatalf("move a file as a directory: %v", r.Err)
	}
	r := do(t, e, vixproto.OpCreateTempFileEx, (&vixproto.CreateTemp{Prefix: "p-", Suffix: ".s", Dir: dir}).Encode())
	name := filepath.Base(string(r.Payload))
	if r.Err != 0 || !strings.HasPrefix(name, "p-vmware") || !strings.HasSuffix(name, ".s") {
		t.Fatalf("temp file: %v %q", r.Err, r.Payload)
	}
	if st, err := os.Stat(string(r.Payload)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("temp file mode: %v %v", st, err)
	}
	r = do(t, e, vixproto.OpCreateTempDirectory, (&vixproto.CreateTemp{}).Encode())
	if r.Err != 0 || !strings.HasPrefix(string(r.Payload), filepath.Join(dir, "vmware-u")+"/vmware") {
		t.Fatalf("temp dir in the private dir: %v %q", r.Err, r.Payload)
	}
	if r := do(t, e, vixproto.OpSetFileAttributes, (&vixproto.SetAttrs{Options: vixproto.AttrSetHidden, Path: dst}).Encode()); r.Err != vixproto.ErrInvalidArg {
		t.Fatalf("hidden on Linux: %v", r.Err)
	}
	if r := do(t, e, vixproto.OpSetFileAttributes, (&vixproto.SetAttrs{Options: vixproto.AttrSetUnixPerms | vixproto.AttrSetModifyDate, Perms: 0o600, ModTime: 1000, Path: dst}).Encode()); r.Err != 0 {
		t.Fatalf("chmod: %v", r.Err)
	}
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o600 || st.ModTime().Unix() != 1000 {
		t.Fatalf("after set attrs: %v %v", st, err)
	}
}

func TestTerminateRefusesDaemon(t *testing.T) {
	e := &Env{DaemonPid: os.Getppid()}
	if r := do(t, e, vixproto.OpTerminateProcess, (&vixproto.KillProcess{Pid: uint64(os.Getppid())}).Encode()); r.Err != vixproto.ErrGuestUserPermissions {
		t.Fatalf("kill the daemon: %v", r.Err)
	}
	if r := do(t, e, vixproto.OpTerminateProcess, (&vixproto.KillProcess{Pid: 1 << 30}).Encode()); r.Err != vixproto.ErrNoSuchProcess {
		t.Fatalf("kill a missing pid: %v", r.Err)
	}
	if r := do(t, e, vixproto.OpReadEnvVariables, (&vixproto.ReadEnv{Names: []string{"A", "NOPE"}}).Encode()); r.Err != 0 {
		t.Fatal(r.Err)
	}
	e.Environ = []string{"A=<1>", "B=2"}
	r := do(t, e, vixproto.OpReadEnvVariables, (&vixproto.ReadEnv{Names: []string{"NOPE", "A"}}).Encode())
	if got := string(r.Payload); got != "<ev>A=%3C1%3E</ev>" {
		t.Fatalf("env: %q", got)
	}
}
