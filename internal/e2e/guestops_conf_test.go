package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/govmtools/govmtools/vmxsim"
)

// TestGuestOpsConf drives tools.conf's [guestoperations] switches
// through the binaries: a per-API disable refuses that API with
// OperationDisabledByGuest (VIX 20005) and leaves the others; disabled=true
// refuses every one; each edit applies without a restart (tools.conf is
// reloaded when it changes). Then a process list too big for one reply
// comes back whole through govc: vmtoolsd chunks it by key and offset and
// the front end asks for every chunk.
func TestGuestOpsConf(t *testing.T) {
	testutil.RequireHelperPAM(t)
	name, password, _ := guestUser(t)
	confDir := t.TempDir()
	conf := filepath.Join(confDir, "tools.conf")
	write := func(text string) { writeConf(t, conf, "[guestoperations]\n"+text) }
	write("ListFilesInGuest.disabled=true\n")
	guestOpsConfScenario(t, startGuestOpsSim(t, confDir), write, name, password)
}

// TestGuestOpsConfPeer is the same scenario against Debian's vmtoolsd
// under the trap, which reloads tools.conf on its own schedule (hence
// the waits), and chunks a long process list the same way.
func TestGuestOpsConfPeer(t *testing.T) {
	p := testutil.Peer(t)
	name, password, _ := guestUser(t)
	ctl, conf := startPeerVixConf(t, p, "ListFilesInGuest.disabled=true\n")
	write := func(text string) { writeConf(t, conf, peerVixConf(text)) }
	guestOpsConfScenario(t, ctl, write, name, password)
}

// writeConf replaces tools.conf as editors do (write, then rename),
// with a modification time in a later second than the file it replaces:
// open-vm-tools reloads tools.conf when its st_mtime (whole seconds)
// changes, polling every 5 s.
func writeConf(t *testing.T, conf, text string) {
	t.Helper()
	tmp := conf + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := time.Now()
	if st, err := os.Stat(conf); err == nil && mt.Unix() <= st.ModTime().Unix() {
		mt = st.ModTime().Add(time.Second)
	}
	if err := os.Chtimes(tmp, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
}

// guestOpsConfScenario starts with ListFilesInGuest.disabled=true in
// place; write replaces the [guestoperations] keys.
func guestOpsConfScenario(t *testing.T, ctl *vmxsim.Ctl, write func(string), name, password string) {
	login := "-l=" + name + ":" + password
	home := "/home/" + name
	vixErr := func(op uint32, body []byte) vixproto.Error {
		t.Helper()
		r, err := ctl.Guest(t.Context(), name, password, op, body)
		if err != nil {
			t.Fatal(err)
		}
		return r.Err
	}
	if o, err := govcErr(t, ctl, "guest.ls", "-vm", "govmtools-vm", login, home); err == nil || !strings.Contains(o, "OperationDisabledByGuest") {
		t.Errorf("guest.ls with ListFilesInGuest.disabled: %v\n%s", err, o)
	}
	govc(t, ctl, "guest.mkdir", "-vm", "govmtools-vm", login, home+"/d")
	write("ListFilesInGuest.disabled=false\nMakeDirectoryInGuest.disabled=true\n")
	testutil.WaitFor(t, 30*time.Second, "the reloaded tools.conf to enable ListFiles", func() bool {
		return vixErr(vixproto.OpListFiles, (&vixproto.ListFiles{Path: home}).Encode()) == vixproto.OK
	})
	if e := vixErr(vixproto.OpCreateDirectoryEx, (&vixproto.FileOp{Op: vixproto.OpCreateDirectoryEx, Path: home + "/e"}).Encode()); e != vixproto.ErrOperationDisabled {
		t.Errorf("mkdir with MakeDirectoryInGuest.disabled: %v", e)
	}
	write("disabled=true\n")
	testutil.WaitFor(t, 30*time.Second, "disabled=true to refuse ValidateCredentials", func() bool {
		return vixErr(vixproto.OpValidateCredentials, nil) == vixproto.ErrOperationDisabled
	})
	if o, err := govcErr(t, ctl, "guest.ps", "-vm", "govmtools-vm", login); err == nil || !strings.Contains(o, "OperationDisabledByGuest") {
		t.Errorf("guest.ps with disabled=true: %v\n%s", err, o)
	}
	write("")
	testutil.WaitFor(t, 30*time.Second, "an empty tools.conf to enable everything", func() bool {
		return vixErr(vixproto.OpValidateCredentials, nil) == vixproto.OK
	})

	// 80 programs with 1000-byte command lines: over 80 KB of list.
	arg := strings.Repeat("9", 1000)
	var pids []string
	t.Cleanup(func() {
		for _, p := range pids {
			if n, err := strconv.Atoi(p); err == nil {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	for range 80 {
		r, err := ctl.Guest(t.Context(), name, password, vixproto.OpStartProgram, (&vixproto.StartProgram{ProgramPath: "/bin/sleep", Arguments: "300 " + arg}).Encode())
		if err != nil || r.Err != vixproto.OK {
			t.Fatalf("start: %+v %v", r, err)
		}
		pids = append(pids, string(r.Payload))
	}
	r, err := ctl.Guest(t.Context(), name, password, vixproto.OpListProcessesEx, (&vixproto.ListProcesses{}).Encode())
	if err != nil || r.Err != vixproto.OK {
		t.Fatalf("list: %+v %v", r, err)
	}
	c, err := vixproto.ParseProcChunk(string(r.Payload))
	if err != nil || !c.Chunked || c.Key == 0 || c.Total < 80_000 {
		t.Fatalf("a long list's first reply is not a first chunk: %+v %v", c, err)
	}
	// Every chunk but the last is as full as open-vm-tools makes it.
	if want := vixproto.MaxResultBuffer - vixproto.ProcChunkFirstHeader; len(c.Data) != want {
		t.Errorf("first chunk: %d bytes of data, want %d", len(c.Data), want)
	}
	r, err = ctl.Guest(t.Context(), name, password, vixproto.OpListProcessesEx, (&vixproto.ListProcesses{Key: c.Key, Offset: uint32(len(c.Data))}).Encode())
	c2, _ := vixproto.ParseProcChunk(string(r.Payload))
	// totalSize counts the list's NUL, which the last chunk carries but
	// a text reply cannot show (vixproto's chunking note): when c2 is the
	// last chunk the data adds up to totalSize-1. (Natively the list is
	// three chunks long; under qemu-user, with fewer other processes, two.)
	received := c2.Left + int64(len(c.Data)+len(c2.Data))
	if c2.Left == 0 {
		received++
	}
	if want := vixproto.MaxResultBuffer - vixproto.ProcChunkLaterHeader; err != nil || r.Err != vixproto.OK || received != c.Total || (c2.Left > 0 && len(c2.Data) != want) {
		t.Errorf("second chunk: %v, %d bytes of data, %d left of %d; want %d bytes", err, len(c2.Data), c2.Left, c.Total, want)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(govc(t, ctl, "guest.ps", "-vm", "govmtools-vm", login, "-json"))); err != nil {
		t.Fatal(err)
	}
	ps := buf.String()
	for _, p := range pids {
		if !strings.Contains(ps, `"pid":`+p+",") {
			t.Fatalf("pid %s is not in the chunked list govc got (%d bytes)", p, len(ps))
		}
	}
	if n := strings.Count(ps, arg); n < len(pids) {
		t.Errorf("%d whole command lines in govc's list, want %d", n, len(pids))
	}
}
