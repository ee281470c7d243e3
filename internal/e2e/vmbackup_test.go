package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc/sockchan"
)

// quiesceVMX is the host half of a quiesced snapshot in miniature, over
// vmxsim's unix:DIR sockets (the DataMap framing): every RPCI is answered
// "1 " and recorded, and TCLO commands go to the guest one at a time.
// It drives the real vmtoolsd through the wire protocol command by
// command (and can vanish at once); vmxsim's own quiesce driver is tested
// in snapshot_test.go.
type quiesceVMX struct {
	dir  string
	lns  []net.Listener
	mu   sync.Mutex
	rpci []string
	tclo *sockchan.Conn
	rpcs []*sockchan.Conn
	got  chan struct{} // closed when the guest's TCLO channel connects
	once sync.Once
	wg   sync.WaitGroup
}

func startQuiesceVMX(t *testing.T) *quiesceVMX {
	t.Helper()
	v := &quiesceVMX{dir: t.TempDir(), got: make(chan struct{})}
	for _, name := range []string{"rpci.sock", "tclo.sock"} {
		ln, err := net.Listen("unix", filepath.Join(v.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		v.lns = append(v.lns, ln)
		tclo := name == "tclo.sock"
		v.wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				ch := sockchan.New(c)
				if tclo {
					v.mu.Lock()
					if v.tclo != nil {
						v.tclo.Close()
					}
					v.tclo = ch
					v.mu.Unlock()
					v.once.Do(func() { close(v.got) })
					continue
				}
				v.mu.Lock()
				v.rpcs = append(v.rpcs, ch)
				v.mu.Unlock()
				v.wg.Go(func() { v.serveRPCI(ch) })
			}
		})
	}
	t.Cleanup(v.close)
	return v
}

func (v *quiesceVMX) serveRPCI(ch *sockchan.Conn) {
	defer ch.Close()
	for {
		req, err := ch.Receive(context.Background())
		if err != nil {
			return
		}
		v.mu.Lock()
		v.rpci = append(v.rpci, strings.TrimSuffix(string(req), "\x00"))
		v.mu.Unlock()
		if ch.Send(context.Background(), []byte("1 ")) != nil {
			return
		}
	}
}

// close makes the host disappear: listeners and channels closed.
func (v *quiesceVMX) close() {
	for _, ln := range v.lns {
		ln.Close()
	}
	v.mu.Lock()
	if v.tclo != nil {
		v.tclo.Close()
	}
	for _, c := range v.rpcs {
		c.Close()
	}
	v.mu.Unlock()
}

func (v *quiesceVMX) command(t *testing.T, cmd string) string {
	t.Helper()
	select {
	case <-v.got:
	case <-time.After(10 * time.Second):
		t.Fatal("vmtoolsd did not open its TCLO channel")
	}
	v.mu.Lock()
	ch := v.tclo
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ch.Send(ctx, []byte(cmd)); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	r, err := ch.Receive(ctx)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(r)
}

// events are the vmbackup.eventSet RPCIs, keep-alives left out.
func (v *quiesceVMX) events() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, r := range v.rpci {
		if e, ok := strings.CutPrefix(r, "vmbackup.eventSet "); ok && !strings.HasPrefix(e, "req.keepAlive") {
			out = append(out, e)
		}
	}
	return out
}

func (v *quiesceVMX) waitEvent(t *testing.T, e string) {
	t.Helper()
	testutil.WaitFor(t, 15*time.Second, "event "+e, func() bool { return slices.Contains(v.events(), e) })
}

// startQuiescer runs the real vmtoolsd against vmx, simulated, allowed
// to freeze only mnt for real; conf holds tools.conf and backupScripts.d.
// It is a plain child (no PID namespace): the thaw guard it starts must
// outlive it.
func startQuiescer(t *testing.T, vmx *quiesceVMX, conf, mnt string) (*exec.Cmd, *testutil.SyncBuffer) {
	t.Helper()
	bin := testutil.Binaries(t)
	cmd := exec.Command(filepath.Join(bin, "vmtoolsd"), "--rpc", "unix:"+vmx.dir, "--conf-dir", conf, "--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "debug")
	cmd.Env = append(os.Environ(), "GOVMTOOLS_SIMULATED=1", "GOVMTOOLS_FREEZE_ALLOW="+mnt)
	out, _ := testutil.StartLogged(t, "vmtoolsd", cmd)
	return cmd, out
}

func quiesceConf(t *testing.T, toolsConf string) (conf, log string) {
	t.Helper()
	conf = t.TempDir()
	os.Chmod(conf, 0o755)
	log = filepath.Join(t.TempDir(), "scripts.log")
	scripts := filepath.Join(conf, "backupScripts.d")
	if err := os.Mkdir(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"10-db", "20-app"} {
		body := "#!/bin/sh\necho \"" + n + " $1\" >> " + log + "\n"
		if err := os.WriteFile(filepath.Join(scripts, n), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "tools.conf"), []byte(toolsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, log
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestVmtoolsdQuiesce drives vmbackup through the real vmtoolsd: scripts
// freeze then thaw in order, the test's loop file system is frozen (a
// write blocks) and thawed by snapshotDone, the host sees open-vm-tools'
// event sequence, and every other mount is only recorded as a simulated
// freeze.
func TestVmtoolsdQuiesce(t *testing.T) {
	mnt, _ := testutil.LoopFS(t)
	vmx := startQuiesceVMX(t)
	conf, log := quiesceConf(t, "[vmbackup]\nscriptArg=arg\n")
	_, out := startQuiescer(t, vmx, conf, mnt)
	if r := vmx.command(t, "reset"); r != "OK ATR toolbox" {
		t.Fatalf("reset: %q", r)
	}
	for cmd, want := range map[string]string{
		"vmbackup.abort":        "ERROR Error: no quiesce operation in progress",
		"vmbackup.snapshotDone": "ERROR Error: no quiesce operation in progress",
		"vmbackup.start 1 \x01": "ERROR Error initializing quiesce operation.",
		"vmbackup.start zz":     "ERROR Error initializing quiesce operation.",
	} {
		if r := vmx.command(t, cmd); r != want {
			t.Errorf("%q: %q, want %q", cmd, r, want)
		}
	}
	if r := vmx.command(t, "vmbackup.start 1"); r != "OK " {
		t.Fatalf("start: %q", r)
	}
	vmx.waitEvent(t, "prov.snapshotCommit 0 ")
	w := testutil.StartWrite(t, mnt)
	testutil.WriteBlocks(t, w, "frozen by vmtoolsd")
	if r := vmx.command(t, "vmbackup.start 1"); r != "ERROR Quiesce operation already in progress." {
		t.Errorf("second start: %q", r)
	}
	if r := vmx.command(t, "vmbackup.snapshotDone"); r != "OK " {
		t.Fatalf("snapshotDone: %q", r)
	}
	testutil.WriteCompletes(t, w, 5*time.Second, "after snapshotDone")
	vmx.waitEvent(t, "req.done 0 ")
	manifest := filepath.Join(conf, "quiesce_manifest.xml")
	if got, want := vmx.events(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.genericManifest 0 " + manifest, "req.done 0 "}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if got, want := readLines(log), []string{"10-db freeze", "20-app freeze", "20-app thaw", "10-db thaw"}; !slices.Equal(got, want) {
		t.Errorf("scripts %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "simulated FIFREEZE (not executed)") {
		t.Error("no simulated freeze of the machine's own mounts was logged")
	}
	if vmx.command(t, "vmbackup.snapshotCompleted") != "ERROR Error: no quiesce complete in progress" {
		t.Error("snapshotCompleted")
	}
}

// TestVmtoolsdQuiesceNeverFrozen: SIGKILL of vmtoolsd mid-freeze (the
// thaw guard thaws), the host disappearing, and snapshotDone never sent
// (the tools.conf timeout) each leave the loop file system thawed.
func TestVmtoolsdQuiesceNeverFrozen(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		act        func(t *testing.T, vmx *quiesceVMX, cmd *exec.Cmd)
		within     time.Duration
	}{
		{"sigkill", "", func(t *testing.T, _ *quiesceVMX, cmd *exec.Cmd) { cmd.Process.Signal(syscall.SIGKILL) }, 5 * time.Second},
		{"host gone", "", func(t *testing.T, vmx *quiesceVMX, _ *exec.Cmd) { vmx.close() }, 10 * time.Second},
		{"no snapshotDone", "[vmbackup]\ntimeout=3\n", func(*testing.T, *quiesceVMX, *exec.Cmd) {}, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			vmx := startQuiesceVMX(t)
			conf, _ := quiesceConf(t, tc.conf)
			cmd, out := startQuiescer(t, vmx, conf, mnt)
			vmx.command(t, "reset")
			if r := vmx.command(t, "vmbackup.start 1"); r != "OK " {
				t.Fatalf("start: %q", r)
			}
			vmx.waitEvent(t, "prov.snapshotCommit 0 ")
			w := testutil.StartWrite(t, mnt)
			testutil.WriteBlocks(t, w, "frozen")
			tc.act(t, vmx, cmd)
			testutil.WriteCompletes(t, w, tc.within, tc.name)
			if tc.name == "no snapshotDone" {
				vmx.waitEvent(t, "req.aborted 4 Quiesce canceled.")
			}
			if tc.name == "sigkill" {
				testutil.WaitFor(t, 10*time.Second, "the guard's log", func() bool {
					return strings.Contains(out.String(), "vmbackup guard: the daemon went away: thawed "+mnt)
				})
			}
		})
	}
}
