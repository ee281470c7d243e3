package vix

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto/malformed"
	"go.uber.org/goleak"
)

// The test binary doubles as the helper: with VIX_TEST_HELPER=1 it runs
// helper.Main with a fake authenticator (password "right" for the
// current user only), as the current user; with VIX_TEST_AUTHLOG set it
// appends each password it checks to that file, one a line.
func TestMain(m *testing.M) {
	if os.Getenv("VIX_TEST_HELPER") == "1" {
		os.Exit(helper.Main(os.Stdin, os.Stdout, os.Stderr, func(user string, pw []byte) error {
			if log := os.Getenv("VIX_TEST_AUTHLOG"); log != "" {
				f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
				if err != nil {
					return err
				}
				f.WriteString(string(pw) + "\n")
				f.Close()
			}
			if string(pw) != "right" {
				return errors.New("denied")
			}
			return nil
		}))
	}
	goleak.VerifyTestMain(m)
}

func newService(t *testing.T) *Service {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIX_TEST_HELPER", "1") // inherited by the helper
	s := &Service{Helper: exe}
	t.Cleanup(s.stop)
	return s
}

func currentUser(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func relay(t *testing.T, s *Service, msg []byte) (vixproto.Error, string) {
	t.Helper()
	full := vixproto.Relayed("req", msg)
	_, args, _ := bytes.Cut(full, []byte(" "))
	out, err := s.relayed(context.Background(), args)
	if err != nil {
		t.Fatal(err)
	}
	e, _, p, bin, perr := vixproto.ParseReply(out)
	if perr != nil || (!bin && out[len(out)-1] != 0) {
		t.Fatalf("reply %q: %v", out, perr)
	}
	return e, string(p)
}

func request(t *testing.T, op, credType uint32, body []byte, user, pw string) []byte {
	t.Helper()
	b, err := vixproto.NewRequest(op, 0, 0, credType, body, vixproto.NamePasswordCred(user, []byte(pw)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Bad input gets the protocol's error, never a crash, and never reaches
// the helper (which is not even set here).
func TestBadInput(t *testing.T) {
	s := &Service{}
	good := request(t, vixproto.OpDeleteFileEx, vixproto.CredNamePassword, (&vixproto.FileOp{Op: vixproto.OpDeleteFileEx, Path: "/x"}).Encode(), "u", "p")
	cases := map[string]struct {
		msg  []byte
		want vixproto.Error
	}{
		"truncated":  {good[:len(good)-3], vixproto.ErrInvalidMessageHeader},
		"oversized":  {append(append([]byte(nil), good...), make([]byte, 70000)...), vixproto.ErrInvalidMessageHeader},
		"empty":      {nil, vixproto.ErrInvalidMessageHeader},
		"unknown op": {request(t, 9999, 1, nil, "u", "p"), vixproto.ErrUnrecognizedCommand},
		"root cred":  {request(t, vixproto.OpStartProgram, vixproto.CredRoot, nil, "u", "p"), vixproto.ErrNotSupported},
		"console":    {request(t, vixproto.OpListFiles, vixproto.CredConsoleUser, nil, "u", "p"), vixproto.ErrNotSupported},
		"saml":       {request(t, vixproto.OpListFiles, vixproto.CredSAMLBearerToken, nil, "u", "p"), vixproto.ErrNotSupported},
		"no cred":    {request(t, vixproto.OpListFiles, vixproto.CredNone, nil, "u", "p"), vixproto.ErrNotSupported},
		"hgfs":       {request(t, vixproto.OpHgfsSendPacket, 1, nil, "u", "p"), vixproto.ErrInvalidMessageBody},
	}
	for name, c := range cases {
		if e, _ := relay(t, s, c.msg); e != c.want {
			t.Errorf("%s: %v, want %v", name, e, c.want)
		}
	}
	// Garbage credential block: a login that cannot succeed.
	bad, _ := vixproto.NewRequest(vixproto.OpListFiles, 0, 0, 1, (&vixproto.ListFiles{Path: "/"}).Encode(), []byte("12345678@@@@\x00"))
	if e, _ := relay(t, s, bad); e != vixproto.ErrInvalidLoginCredentials {
		t.Errorf("undecodable credential: %v", e)
	}
	// 10,000 malformed requests in a row, each with its error.
	for i := range 10000 {
		m, want := malformed.Request(i, "u", "p")
		if e, _ := relay(t, s, m); e != want {
			t.Fatalf("malformed request %d (kind %d): %v, want %v", i, i%malformed.Kinds, e, want)
		}
	}
	// And random damage: never a crash, always an error.
	for i := range 10000 {
		m := append([]byte(nil), good...)
		m[i%len(m)] ^= byte(i) | 1
		if e, _ := relay(t, s, m[:len(m)-(i%3)]); e == vixproto.OK {
			t.Fatalf("damaged request %d answered OK", i)
		}
	}
}

func TestHelperOps(t *testing.T) {
	s := newService(t)
	user := currentUser(t)
	dir := t.TempDir()
	e, _ := relay(t, s, request(t, vixproto.OpValidateCredentials, 4, nil, user, "right"))
	if e != 0 {
		t.Fatalf("validate: %v", e)
	}
	if e, _ := relay(t, s, request(t, vixproto.OpValidateCredentials, 4, nil, user, "wrong")); e != vixproto.ErrInvalidLoginCredentials {
		t.Fatalf("wrong password: %v", e)
	}
	mk := (&vixproto.FileOp{Op: vixproto.OpCreateDirectoryEx, Path: dir + "/a/b", Flag: true}).Encode()
	if e, _ := relay(t, s, request(t, vixproto.OpCreateDirectoryEx, 1, mk, user, "right")); e != 0 {
		t.Fatalf("mkdir -p: %v", e)
	}
	if e, _ := relay(t, s, request(t, vixproto.OpCreateDirectoryEx, 1, mk, user, "right")); e != vixproto.ErrFileAlreadyExists {
		t.Fatalf("mkdir again: %v", e)
	}
	for i := range 3 {
		os.WriteFile(dir+"/f"+string(rune('0'+i)), []byte("x"), 0o644)
	}
	lf := (&vixproto.ListFiles{Path: dir, MaxResults: 2, Pattern: "^f"}).Encode()
	e, p := relay(t, s, request(t, vixproto.OpListFiles, 1, lf, user, "right"))
	r := vixproto.ParseListFilesResult(p)
	if e != 0 || len(r.Files) != 2 || r.Remaining != 1 || r.Files[0].Size != 1 {
		t.Fatalf("list files: %v %q %+v", e, p, r)
	}
	rm := (&vixproto.FileOp{Op: vixproto.OpDeleteFileEx, Path: dir + "/a"}).Encode()
	if e, _ := relay(t, s, request(t, vixproto.OpDeleteFileEx, 1, rm, user, "right")); e != vixproto.ErrNotAFile {
		t.Fatalf("rm of a directory: %v", e)
	}
	rd := (&vixproto.FileOp{Op: vixproto.OpDeleteDirectoryEx, Path: dir + "/a"}).Encode()
	if e, _ := relay(t, s, request(t, vixproto.OpDeleteDirectoryEx, 1, rd, user, "right")); e != vixproto.ErrDirectoryNotEmpty {
		t.Fatalf("rmdir of a non-empty directory: %v", e)
	}
	// StartProgram, then the process list shows its exit code.
	sp := (&vixproto.StartProgram{ProgramPath: "/bin/sh", Arguments: "-c 'exit 3'"}).Encode()
	e, pid := relay(t, s, request(t, vixproto.OpStartProgram, 1, sp, user, "right"))
	if e != 0 || pid == "" {
		t.Fatalf("start: %v %q", e, pid)
	}
	var n uint64
	for _, c := range pid {
		n = n*10 + uint64(c-'0')
	}
	var ps []vixproto.Process
	testutil.WaitFor(t, 10*time.Second, "the exit code in the process list", func() bool {
		_, pl := relay(t, s, request(t, vixproto.OpListProcessesEx, 1, (&vixproto.ListProcesses{Pids: []uint64{n}}).Encode(), user, "right"))
		ps = vixproto.ParseProcesses(pl)
		return len(ps) == 1 && ps[0].End != 0
	})
	if ps[0].ExitCode != 3 || ps[0].Cmd != "sh" || !strings.Contains(ps[0].CmdLine, "exit 3") {
		t.Fatalf("process %+v", ps[0])
	}
	s.waiters.Wait()
	// Failed logins are limited: after MaxFailures, even the right
	// password is refused for a while.
	for range MaxFailures {
		relay(t, s, request(t, vixproto.OpValidateCredentials, 1, nil, "other", "wrong"))
	}
	if !s.limited("other") {
		t.Fatal("not limited after repeated failures")
	}
}

// A program still running when the daemon stops does not hold the stop.
func TestStopWithRunningProgram(t *testing.T) {
	s := newService(t)
	sp := (&vixproto.StartProgram{ProgramPath: "/bin/sleep", Arguments: "30"}).Encode()
	e, pid := relay(t, s, request(t, vixproto.OpStartProgram, 1, sp, currentUser(t), "right"))
	if e != 0 {
		t.Fatalf("start: %v", e)
	}
	done := make(chan struct{})
	go func() { s.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop waited for the running program")
	}
	var n int
	for _, c := range pid {
		n = n*10 + int(c-'0')
	}
	syscall.Kill(n, syscall.SIGKILL)
}
