package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
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

// guestUser creates a throwaway user with a password (useradd, chpasswd)
// and a home, deleted (with the home) when the test ends.
func guestUser(t *testing.T) (name, password, uid string) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"useradd", "userdel", "chpasswd"} {
		_, err := exec.LookPath(tool)
		testutil.Require(t, err == nil, tool, "apt-get install passwd")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name = "gvmt" + hex.EncodeToString(b)
	password = "pw-" + hex.EncodeToString(b) + "-Ok"
	removeOrphanUsers(t)
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", "-c", fmt.Sprintf("%s%d", userMark, os.Getpid()), name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", "-f", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return name, password, u.Uid
}

// userMark starts the comment (GECOS) of every user guestUser makes; the
// creating test process's pid follows.
const userMark = "govmtools test user, pid "

// removeOrphanUsers deletes the users an earlier test process made and
// could not remove (killed, or timed out before its cleanups ran): those
// whose comment names a pid that no longer runs.
func removeOrphanUsers(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 5 || !strings.HasPrefix(f[0], "gvmt") {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(f[4], userMark))
		if !strings.HasPrefix(f[4], userMark) || err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if out, err := exec.Command("userdel", "-r", "-f", f[0]).CombinedOutput(); err != nil {
			t.Logf("userdel %s (left by pid %d): %v\n%s", f[0], pid, err, out)
		} else {
			t.Logf("removed user %s, left by test process %d", f[0], pid)
		}
	}
}

// TestGuestOps drives vSphere guest operations through govc, vmxsim's
// front end (VIX over TCLO) and our vmtoolsd with its PAM helper, as a
// user created for the test.
func TestGuestOps(t *testing.T) {
	testutil.RequireHelperPAM(t)
	name, password, uid := guestUser(t)
	guestOpsScenario(t, startGuestOpsSim(t, ""), name, password, uid)
}

// startGuestOpsSim starts vmxsim with its vSphere front end and our
// vmtoolsd (tools.conf from confDir; "" is a new empty one), and waits
// for vSphere to see the tools running.
func startGuestOpsSim(t *testing.T, confDir string) *vmxsim.Ctl {
	t.Helper()
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	testutil.Govc(t)
	startVmtoolsd(t, sim, confDir, nil)
	waitToolsRunning(t, ctl, 10*time.Second)
	waitVSphereRunning(t, ctl)
	return ctl
}

// TestGuestOpsPeer runs the same scenario against Debian's vmtoolsd
// under the trap, with its vix plugin and PAM (tools.conf
// [guestoperations] useVGAuth=false: no VGAuthService runs here).
func TestGuestOpsPeer(t *testing.T) {
	p := testutil.Peer(t)
	name, password, uid := guestUser(t)
	guestOpsScenario(t, startPeerVix(t, p), name, password, uid)
}

// startPeerVix starts Debian's vmtoolsd under the trap with the vix
// plugin on PAM and waits for the host to see it running.
func startPeerVix(t *testing.T, p *testutil.PeerTools) *vmxsim.Ctl {
	ctl, _ := startPeerVixConf(t, p, "")
	return ctl
}

// peerVixConf is the tools.conf Debian's vmtoolsd runs with, extra
// adding [guestoperations] keys.
func peerVixConf(extra string) string {
	return "[guestoperations]\nuseVGAuth=false\n" + extra + "[logging]\nlog=false\n"
}

// startPeerVixConf is startPeerVix with extra [guestoperations] keys;
// it also returns the tools.conf path.
func startPeerVixConf(t *testing.T, p *testutil.PeerTools, extra string) (*vmxsim.Ctl, string) {
	testutil.Govc(t)
	work := t.TempDir()
	plugins := filepath.Join(work, "plugins")
	os.MkdirAll(plugins, 0o755)
	conf := filepath.Join(work, "tools.conf")
	os.WriteFile(conf, []byte(peerVixConf(extra)), 0o644)
	tr := testutil.StartTrap(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	args := append(append([]string{}, p.Env...), "HOME="+work, p.Bin("vmtoolsd"), "-c", conf, "-p", plugins, "--common-path", p.CommonPluginDir)
	pid, output := tr.Start(t, "/usr/bin/env", args...)
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		tr.Run(t, "/bin/sh", "-c", "wait")
		if t.Failed() {
			t.Logf("Debian's vmtoolsd:\n%s", output())
		}
	})
	ctl := vmxsim.NewCtl(tr.Dir)
	testutil.WaitFor(t, 20*time.Second, "Debian's tools running", func() bool { return state(t, ctl).Tools.Running })
	return ctl, conf
}

// guestOpsScenario is the guest-operations scenario both tools pass.
func guestOpsScenario(t *testing.T, ctl *vmxsim.Ctl, name, password, uid string) {
	login := "-l=" + name + ":" + password
	psJSON := func(pid string) string {
		t.Helper()
		var b bytes.Buffer
		raw := govc(t, ctl, "guest.ps", "-vm", "govmtools-vm", login, "-p", pid, "-json")
		if err := json.Compact(&b, []byte(raw)); err != nil {
			t.Fatalf("guest.ps -json: %v\n%s", err, raw)
		}
		return b.String()
	}
	g := func(args ...string) string {
		t.Helper()
		return govc(t, ctl, append([]string{args[0], "-vm", "govmtools-vm", login}, args[1:]...)...)
	}
	gErr := func(args ...string) (string, error) {
		t.Helper()
		return govcErr(t, ctl, append([]string{args[0], "-vm", "govmtools-vm", login}, args[1:]...)...)
	}
	home := "/home/" + name

	// The program runs as the user: id -u writes the user's uid.
	out := filepath.Join(home, "id.out")
	pid := strings.TrimSpace(g("guest.start", "/usr/bin/id", "-u", ">", out))
	var ps string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last guest.ps: %s", ps)
		}
	})
	testutil.WaitFor(t, 15*time.Second, "the program to end in guest.ps", func() bool {
		ps = psJSON(pid)
		return strings.Contains(ps, `"endTime"`)
	})
	if strings.Contains(ps, `"exitCode"`) || !strings.Contains(ps, `"owner":"`+name+`"`) || !strings.Contains(ps, `"name":"id"`) {
		t.Errorf("guest.ps of id: %s", ps)
	}
	if b, err := os.ReadFile(out); err != nil || strings.TrimSpace(string(b)) != uid {
		t.Fatalf("id -u wrote %q (%v), want %s", b, err, uid)
	}

	// Exit code and end time of an ended program.
	pid = strings.TrimSpace(g("guest.start", "/bin/sh", "-c", "'exit 7'"))
	testutil.WaitFor(t, 15*time.Second, "exit code 7 in guest.ps", func() bool {
		ps = psJSON(pid)
		return strings.Contains(ps, `"exitCode":7`) && strings.Contains(ps, `"endTime"`)
	})

	// guest.kill ends a running program.
	pid = strings.TrimSpace(g("guest.start", "/bin/sleep", "300"))
	g("guest.kill", "-p", pid)
	testutil.WaitFor(t, 15*time.Second, "the killed program to end", func() bool {
		return strings.Contains(psJSON(pid), `"endTime"`)
	})

	// A wrong password is InvalidGuestLogin.
	if o, err := govcErr(t, ctl, "guest.ls", "-vm", "govmtools-vm", "-l="+name+":wrong", home); err == nil || !strings.Contains(o, "InvalidGuestLogin") {
		t.Errorf("wrong password: %v\n%s", err, o)
	}

	// Files and directories, as the user.
	dir := filepath.Join(home, "d1")
	g("guest.mkdir", dir)
	if o, err := gErr("guest.mkdir", dir); err == nil || !strings.Contains(o, "FileAlreadyExists") {
		t.Errorf("mkdir of an existing dir: %v\n%s", err, o)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("mkdir: %v %v", st, err)
	}
	if ls := g("guest.ls", home); !strings.Contains(ls, "d1") {
		t.Errorf("guest.ls %s: %s", home, ls)
	}
	tmp := strings.TrimSpace(g("guest.mktemp", "-p", dir))
	if !strings.HasPrefix(tmp, dir+"/") {
		t.Fatalf("mktemp: %q", tmp)
	}
	g("guest.chmod", "0640", tmp)
	if st, err := os.Stat(tmp); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("chmod: %v %v", st, err)
	}
	moved := filepath.Join(dir, "moved")
	g("guest.mv", tmp, moved)
	if _, err := os.Stat(moved); err != nil {
		t.Errorf("mv: %v", err)
	}
	g("guest.rm", moved)
	if _, err := os.Stat(moved); !os.IsNotExist(err) {
		t.Errorf("rm: %v", err)
	}
	if o, err := gErr("guest.rm", moved); err == nil || !strings.Contains(o, "FileNotFound") {
		t.Errorf("rm of a missing file: %v\n%s", err, o)
	}
	g("guest.rmdir", dir)
	if env := g("guest.getenv", "HOME", "USER"); !strings.Contains(env, "HOME="+home) || !strings.Contains(env, "USER="+name) {
		t.Errorf("getenv: %q", env)
	}

	// The kernel enforces the user's rights.
	denied := filepath.Join(home, "shadow.out")
	pid = strings.TrimSpace(g("guest.start", "/bin/cat", "/etc/shadow", ">", denied, "2>&1"))
	testutil.WaitFor(t, 15*time.Second, "cat /etc/shadow to fail", func() bool {
		return strings.Contains(psJSON(pid), `"exitCode":1`)
	})
	if b, _ := os.ReadFile(denied); !strings.Contains(string(b), "Permission denied") {
		t.Errorf("cat /etc/shadow as the user: %q", b)
	}
	if o, err := gErr("guest.mkdir", "/root/x-"+name); err == nil || !strings.Contains(o, "CannotAccessFile") {
		t.Errorf("mkdir in /root as the user: %v\n%s", err, o)
	}
	if _, err := os.Stat("/root/x-" + name); err == nil {
		os.Remove("/root/x-" + name)
		t.Errorf("mkdir in /root happened")
	}

	// The same operations through vmxsim ctl (VIX straight over TCLO).
	if r, err := ctl.Guest(t.Context(), name, password, vixproto.OpValidateCredentials, nil); err != nil || r.Err != vixproto.OK {
		t.Errorf("ctl validate: %+v %v", r, err)
	}
	if r, err := ctl.Guest(t.Context(), name, "wrong", vixproto.OpValidateCredentials, nil); err != nil || r.Err != vixproto.ErrInvalidLoginCredentials {
		t.Errorf("ctl validate, wrong password: %+v %v", r, err)
	}
	var lsOut bytes.Buffer
	if err := vmxsim.GuestCommand(t.Context(), ctl, []string{name + ":" + password, "ls", home}, &lsOut); err != nil || !strings.Contains(lsOut.String(), "id.out") {
		t.Errorf("ctl guest ls: %v\n%s", err, lsOut.String())
	}
}
