package packaging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// rootUser creates a throwaway user with a password and a home inside
// the Debian root (its own /etc/passwd and /etc/shadow, not this
// machine's), deleted when the test ends, and returns its uid.
func rootUser(t *testing.T, root string) (name, password string, uid int) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name = "gvmp" + hex.EncodeToString(b)
	password = "pw-" + hex.EncodeToString(b) + "-Ok"
	mustRun(t, "chroot", root, "useradd", "-m", "-s", "/bin/sh", name)
	t.Cleanup(func() {
		// t.Context() is already done in a cleanup: no run().
		if out, err := exec.Command("chroot", root, "userdel", "-r", "-f", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	cmd := exec.Command("chroot", root, "chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	uid, err := strconv.Atoi(strings.TrimSpace(mustRun(t, "chroot", root, "id", "-u", name)))
	if err != nil {
		t.Fatal(err)
	}
	return name, password, uid
}

// startInstalledVmtoolsd runs the vmtoolsd the .deb installed in root,
// chrooted, against the simulator: in its own mount and PID namespaces
// (unshare), where /proc is mounted for it and the simulator's socket
// directory is bound at /run/vmxsim; both mounts vanish with the
// namespace. vmtoolsd finds vmware-vix-helper beside its executable, so
// every guest operation goes through the installed helper, the root's
// libpam and the package's /etc/pam.d/vmtoolsd.
func startInstalledVmtoolsd(t *testing.T, root string, sim *testutil.Sim) {
	t.Helper()
	need(t, "unshare", "util-linux")
	const script = `mkdir -p "$1/run/vmxsim" && mount --bind "$2" "$1/run/vmxsim" && exec chroot "$1" /usr/bin/vmtoolsd --rpc unix:/run/vmxsim --log-level debug`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc="+root+"/proc",
		"sh", "-c", script, "sh", root, sim.Dir)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "GOVMTOOLS_SIMULATED=1"}
	// Registered before StartLogged, so it runs after StartLogged's
	// cleanup has killed and reaped unshare (and logged its output if the
	// test had failed: a process left behind is reported on its own).
	t.Cleanup(func() {
		// The PID namespace's init is gone, so the kernel kills the rest.
		testutil.WaitFor(t, 10*time.Second, "no process left in the root", func() bool {
			procs, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range procs {
				if r, _ := os.Readlink(p + "/root"); r == root {
					return false
				}
			}
			return true
		})
		noProcessIn(t, root)
	})
	testutil.StartLogged(t, "installed vmtoolsd", cmd)
}

// TestInstalledGuestOps installs the .deb into a throwaway Debian root
// and drives guest operations through govc, vmxsim's vSphere front end
// and the installed vmtoolsd and vmware-vix-helper, as a user of that
// root: the program runs with the user's uid, a file operation leaves a
// file the user owns, and a wrong password is InvalidGuestLogin; then the
// same with the rpm's /etc/pam.d/vmtoolsd in place of the deb's.
func TestInstalledGuestOps(t *testing.T) {
	root := debRoot(t)
	dpkg(t, root, "-i", hostDeb(t))
	checkInstalled(t, root)
	name, password, uid := rootUser(t, root)
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	govcBin := testutil.Govc(t)
	startInstalledVmtoolsd(t, root, sim)
	testutil.WaitFor(t, 20*time.Second, "the installed tools running", func() bool {
		s, err := ctl.State(t.Context())
		return err == nil && s.Tools.Running
	})
	u, err := ctl.VSphereURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	govc := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, govcBin, args...)
		cmd.Env = append(os.Environ(), "GOVC_URL="+u, "GOVC_INSECURE=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	login := "-l=" + name + ":" + password
	// guest.run waits for the VM's tools to be ready for guest
	// operations as vSphere reports them.
	var out string
	testutil.WaitFor(t, 20*time.Second, "guest.run id -u to answer", func() bool {
		out, err = govc("guest.run", "-vm", "govmtools-vm", login, "/usr/bin/id", "-u")
		return err == nil || !strings.Contains(out, "GuestOperationsUnavailable")
	})
	if err != nil || strings.TrimSpace(out) != strconv.Itoa(uid) {
		t.Fatalf("guest.run id -u: %q (%v), want %d", out, err, uid)
	}
	t.Logf("guest.run /usr/bin/id -u as %s in the installed root: %s", name, strings.TrimSpace(out))
	home := "/home/" + name
	if out, err := govc("guest.mkdir", "-vm", "govmtools-vm", login, home+"/made"); err != nil {
		t.Fatalf("guest.mkdir: %v\n%s", err, out)
	}
	st, err := os.Stat(filepath.Join(root, home, "made"))
	if err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("guest.mkdir made %v (%v), want a directory of uid %d", st, err, uid)
	}
	// The user's rights bound what the operation may do (open-vm-tools'
	// VIX_E_FILE_ACCESS_ERROR, CannotAccessFile from hostd).
	if out, err := govc("guest.mkdir", "-vm", "govmtools-vm", login, "/etc/made-by-"+name); err == nil || !strings.Contains(out, "CannotAccessFile") {
		t.Errorf("guest.mkdir in /etc as the user: %v\n%s", err, out)
	}
	if out, err := govc("guest.ls", "-vm", "govmtools-vm", "-l="+name+":wrong", home); err == nil || !strings.Contains(out, "InvalidGuestLogin") {
		t.Errorf("wrong password: %v\n%s", err, out)
	}

	// The rpm's PAM file (Linux-PAM's modules, no distribution stack)
	// with this root's Linux-PAM: the same login passes, a wrong
	// password does not. Each request runs a new helper, which reads
	// the file afresh.
	rpmPAM, err := data.ReadFile("data/pam.d/vmtoolsd-rpm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/pam.d/vmtoolsd"), rpmPAM, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := govc("guest.run", "-vm", "govmtools-vm", login, "/usr/bin/id", "-u"); err != nil || strings.TrimSpace(out) != strconv.Itoa(uid) {
		t.Errorf("guest.run id -u with the rpm's PAM file: %q (%v), want %d", out, err, uid)
	}
	if out, err := govc("guest.ls", "-vm", "govmtools-vm", "-l="+name+":wrong", home); err == nil || !strings.Contains(out, "InvalidGuestLogin") {
		t.Errorf("wrong password with the rpm's PAM file: %v\n%s", err, out)
	}
}
