package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
)

// The host half of a quiesced snapshot (vmxsim/quiesce) against the real
// guests under `vmxsim run`: ours and Debian's vmtoolsd, each allowed to
// freeze for real only the test's loop file system (--freeze-allow);
// every other freeze is a recorded no-op of the trap (Debian's), or only
// logged by ours (GOVMTOOLS_SIMULATED).

// snapGuest is one vmtoolsd under the trap.
type snapGuest struct {
	tr     *testutil.Trap
	ctl    *vmxsim.Ctl
	mnt    string // the loop file system it may freeze
	log    string // what the backup scripts ran, one line each
	pid    int
	output func() string
}

// snapScripts writes the backup scripts 10-db and 20-app into
// conf/backupScripts.d (owned by root, not writable by others); 20-app
// fails its freeze when failFreeze.
func snapScripts(t *testing.T, conf string, failFreeze bool) (log string) {
	t.Helper()
	log = filepath.Join(t.TempDir(), "scripts.log")
	dir := filepath.Join(conf, "backupScripts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(conf, 0o755)
	for _, n := range []string{"10-db", "20-app"} {
		body := "#!/bin/sh\necho \"" + n + " $1\" >> " + log + "\n"
		if n == "20-app" && failFreeze {
			body += "[ \"$1\" = freeze ] && exit 1\n"
		}
		body += "exit 0\n"
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return log
}

// startSnapTrap starts `vmxsim run` with the vSphere front end, allowed
// to freeze mnt.
func startSnapTrap(t *testing.T, mnt string) *testutil.Trap {
	t.Helper()
	return testutil.StartTrap(t, "--vsphere", "127.0.0.1:0", "--freeze-allow", mnt, "--log-level", "info", "--ping-interval", "200ms")
}

// startOursSnap runs our vmtoolsd under tr with conf (tools.conf body
// toolsConf) and the backup scripts.
func startOursSnap(t *testing.T, tr *testutil.Trap, mnt, toolsConf string, failFreeze bool) *snapGuest {
	t.Helper()
	conf := t.TempDir()
	g := &snapGuest{tr: tr, ctl: vmxsim.NewCtl(tr.Dir), mnt: mnt, log: snapScripts(t, conf, failFreeze)}
	if err := os.WriteFile(filepath.Join(conf, "tools.conf"), []byte(toolsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	g.pid, g.output = tr.Start(t, "/usr/bin/env", "GOVMTOOLS_FREEZE_ALLOW="+mnt, filepath.Join(tr.Bin, "vmtoolsd"),
		"--conf-dir", conf, "--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "debug")
	g.cleanup(t)
	return g
}

// startDebianSnap runs Debian's vmtoolsd under tr. Its backup scripts
// directory is fixed (/etc/vmware-tools/backupScripts.d, where it also
// writes its manifest), so it runs in a private mount namespace with an
// overlay on /etc whose upper layer is the test's (on /dev/shm): the
// machine's /etc is never written.
func startDebianSnap(t *testing.T, tr *testutil.Trap, mnt, toolsConf string, failFreeze bool) *snapGuest {
	t.Helper()
	p := testutil.Peer(t)
	unshare, err := exec.LookPath("unshare")
	testutil.Require(t, err == nil, "unshare (util-linux)", "apt-get install util-linux")
	conf := t.TempDir()
	g := &snapGuest{tr: tr, ctl: vmxsim.NewCtl(tr.Dir), mnt: mnt, log: snapScripts(t, conf, failFreeze)}
	toolsConf = fmt.Sprintf("[logging]\nlog = true\nvmsvc.level = debug\nvmsvc.handler = file\nvmsvc.data = %s/vmsvc.log\n\n", conf) + toolsConf
	if err := os.WriteFile(filepath.Join(conf, "tools.conf"), []byte(toolsConf), 0o644); err != nil {
		t.Fatal(err)
	}
	layer, err := os.MkdirTemp("/dev/shm", "govmtools-etc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(layer) })
	script := fmt.Sprintf(`set -e
mkdir %[1]s/upper %[1]s/work
mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/upper,workdir=%[1]s/work /etc
mkdir -p /etc/vmware-tools/backupScripts.d
cp -p %[2]s/backupScripts.d/* /etc/vmware-tools/backupScripts.d/
exec /usr/bin/env %[3]s HOME=%[2]s %[4]s -c %[2]s/tools.conf -p %[5]s --common-path %[6]s
`, layer, conf, strings.Join(p.Env, " "), p.Bin("vmtoolsd"), p.PluginDir, p.CommonPluginDir)
	g.pid, g.output = tr.Start(t, unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(conf, "vmsvc.log"))
			t.Logf("Debian's vmsvc.log:\n%s", b)
		}
	})
	g.cleanup(t)
	return g
}

func (g *snapGuest) cleanup(t *testing.T) {
	t.Cleanup(func() {
		if syscall.Kill(g.pid, syscall.SIGTERM) == nil {
			g.tr.Wait(t, g.pid)
		}
		if t.Failed() {
			t.Logf("vmtoolsd output:\n%s", g.output())
		}
	})
	testutil.WaitFor(t, 20*time.Second, "tools running", func() bool { return state(t, g.ctl).Tools.Running })
}

// lastSnapshot is the last snapshot operation in ctl state.
func (g *snapGuest) lastSnapshot(t *testing.T) quiesce.Result {
	t.Helper()
	s := state(t, g.ctl).Quiesce.Snapshots
	if len(s) == 0 {
		return quiesce.Result{}
	}
	return s[len(s)-1]
}

// waitCommit waits until the running operation saw prov.snapshotCommit.
func (g *snapGuest) waitCommit(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, "prov.snapshotCommit", func() bool {
		return slices.ContainsFunc(g.lastSnapshot(t).Events, func(e quiesce.Event) bool { return e.Name == quiesce.EventCommit })
	})
}

// eventSeq is an operation's events as "name code", keep-alives left
// out: the part both guests must agree on (messages carry paths).
func eventSeq(r quiesce.Result) []string {
	var out []string
	for _, e := range r.Events {
		if e.Name != quiesce.EventKeepAlive {
			out = append(out, fmt.Sprintf("%s %d", e.Name, e.Code))
		}
	}
	return out
}

// checkFreezesRecorded: every FIFREEZE the trap executed was on the
// test's loop file system, and FITHAW followed.
func checkFreezesRecorded(t *testing.T, tr *testutil.Trap, mnt string) (executed, recorded int) {
	t.Helper()
	for _, line := range strings.Split(tr.Logs(), "\n") {
		switch {
		case strings.Contains(line, "trap: FIFREEZE executed"):
			executed++
			if !strings.Contains(line, "path="+mnt) {
				t.Errorf("the trap executed a freeze that was not the test's: %s", line)
			}
		case strings.Contains(line, "trap: FIFREEZE recorded, not executed"):
			recorded++
		}
	}
	return executed, recorded
}

var snapGuests = []struct {
	name  string
	start func(t *testing.T, tr *testutil.Trap, mnt, toolsConf string, failFreeze bool) *snapGuest
}{
	{"ours", startOursSnap},
	{"debian", startDebianSnap},
}

// TestSnapshotQuiesceGovc: `govc snapshot.create -q` against our
// vmtoolsd and Debian's under the trap: the scripts ran freeze then thaw
// in order, the loop file system was frozen (a write blocked while the
// host held snapshotDone back) and thawed, and the host saw
// open-vm-tools' event sequence, the same from both guests. Debian's
// freezes of the machine's own mounts were all recorded, none executed.
func TestSnapshotQuiesceGovc(t *testing.T) {
	testutil.Govc(t)
	seqs := map[string][]string{}
	for _, gt := range snapGuests {
		t.Run(gt.name, func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			tr := startSnapTrap(t, mnt)
			g := gt.start(t, tr, mnt, "", false)
			if err := g.ctl.SnapshotDelayDone(t.Context(), 2*time.Second); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			var out string
			go func() {
				var err error
				out, err = govcErr(t, g.ctl, "snapshot.create", "-q", "-vm", "govmtools-vm", "s1")
				done <- err
			}()
			g.waitCommit(t)
			w := testutil.StartWrite(t, mnt)
			testutil.WriteBlocks(t, w, gt.name+" frozen for the snapshot")
			if err := <-done; err != nil {
				t.Fatalf("govc snapshot.create -q: %v\n%s", err, out)
			}
			testutil.WriteCompletes(t, w, 10*time.Second, gt.name+" after the snapshot")
			res := g.lastSnapshot(t)
			seqs[gt.name] = eventSeq(res)
			want := []string{"reset 0", "prov.snapshotCommit 0", "req.genericManifest 0", "req.done 0"}
			if got := eventSeq(res); !slices.Equal(got, want) || !res.Quiesced || res.Fault != "" {
				t.Errorf("host saw %q (%+v), want %q", got, res, want)
			}
			if got, want := readLines(g.log), []string{"10-db freeze", "20-app freeze", "20-app thaw", "10-db thaw"}; !slices.Equal(got, want) {
				t.Errorf("scripts %q, want %q", got, want)
			}
			executed, recorded := checkFreezesRecorded(t, tr, mnt)
			if executed != 1 || gt.name == "debian" && recorded == 0 {
				t.Errorf("freezes executed %d (want 1, the loop fs), recorded %d", executed, recorded)
			}
			if tree := govc(t, g.ctl, "snapshot.tree", "-vm", "govmtools-vm"); !strings.Contains(tree, "s1") {
				t.Errorf("snapshot.tree: %q", tree)
			}
		})
	}
	if len(seqs) == 2 && !slices.Equal(seqs["ours"], seqs["debian"]) {
		t.Errorf("event sequences differ: ours %q, Debian's %q", seqs["ours"], seqs["debian"])
	}
}

// TestSnapshotQuiesceScriptFails: a failing freeze script gives the
// earlier script freezeFail, nothing is frozen, and govc reports the
// vSphere fault; both guests send the same events.
func TestSnapshotQuiesceScriptFails(t *testing.T) {
	testutil.Govc(t)
	seqs := map[string][]string{}
	for _, gt := range snapGuests {
		t.Run(gt.name, func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			tr := startSnapTrap(t, mnt)
			g := gt.start(t, tr, mnt, "", true)
			out, err := govcErr(t, g.ctl, "snapshot.create", "-q", "-vm", "govmtools-vm", "s1")
			if err == nil || !strings.Contains(out, "An error occurred while quiescing the virtual machine") || !strings.Contains(out, "The error code was: 2") {
				t.Fatalf("govc snapshot.create -q with a failing script: %v\n%s", err, out)
			}
			res := g.lastSnapshot(t)
			seqs[gt.name] = eventSeq(res)
			if want := []string{"reset 0", "req.error 2", "req.error 5", "req.done 0"}; !slices.Equal(seqs[gt.name], want) || res.Fault != quiesce.FaultApplication {
				t.Errorf("host saw %q fault %q, want %q %s", seqs[gt.name], res.Fault, want, quiesce.FaultApplication)
			}
			if got, want := readLines(g.log), []string{"10-db freeze", "20-app freeze", "10-db freezeFail"}; !slices.Equal(got, want) {
				t.Errorf("scripts %q, want %q", got, want)
			}
			if executed, _ := checkFreezesRecorded(t, tr, mnt); executed != 0 {
				t.Errorf("%d freezes executed after a failed script", executed)
			}
			if tree, _ := govcErr(t, g.ctl, "snapshot.tree", "-vm", "govmtools-vm"); strings.Contains(tree, "s1") {
				t.Errorf("a failed snapshot is in the tree: %q", tree)
			}
		})
	}
	if len(seqs) == 2 && !slices.Equal(seqs["ours"], seqs["debian"]) {
		t.Errorf("event sequences differ: ours %q, Debian's %q", seqs["ours"], seqs["debian"])
	}
}
