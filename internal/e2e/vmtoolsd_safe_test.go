package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// TestVmtoolsdUnixRecordsByDefault: `vmtoolsd --rpc unix:DIR` with no
// --power-runner and without GOVMTOOLS_SIMULATED records a halt instead of
// performing it, and says so at start. As a safety net should it not, the
// daemon runs in a private mount namespace where every systemctl is a
// script that only leaves a mark, and with a D-Bus system bus address that
// leads nowhere, so a regression fails this test instead of powering off
// the machine.
func TestVmtoolsdUnixRecordsByDefault(t *testing.T) {
	testutil.RequireRoot(t) // mount namespace, CLONE_NEWPID
	unshare, err := exec.LookPath("unshare")
	testutil.Require(t, err == nil, "unshare", "apt-get install util-linux")
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0")
	ctl := vmxsim.NewCtl(sim.Dir)
	work := t.TempDir()
	mark := filepath.Join(work, "systemctl-was-run")
	fake := filepath.Join(work, "systemctl")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >>"+mark+"\nexit 1\n"), 0o755)
	wrap := `for p in /usr/bin/systemctl /bin/systemctl /sbin/systemctl; do
	if [ -e "$p" ] && [ ! -L "$p" ]; then mount --bind "$FAKE" "$p" || exit 99; fi
done
exec "$@"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", wrap, "sh",
		filepath.Join(sim.Bin, "vmtoolsd"), "--rpc", sim.Mode(), "--conf-dir", work, "--log-level", "debug")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GOVMTOOLS_") && !strings.HasPrefix(e, "DBUS_SYSTEM_BUS_ADDRESS=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, "FAKE="+fake, "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+filepath.Join(work, "no-bus"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: testutil.NewPIDCloneflag()}
	out, _ := testutil.StartLogged(t, "vmtoolsd", cmd)
	waitToolsRunning(t, ctl, 10*time.Second, "tools.capability.statechange ")
	if s := out.String(); !strings.Contains(s, "power actions are recorded, not performed") || !strings.Contains(s, "transport is unix:") {
		t.Fatalf("vmtoolsd did not say at start that it records power actions:\n%s", s)
	}
	if reply, err := ctl.Power(t.Context(), "halt"); err != nil || reply != "OK " {
		t.Fatalf("ctl power halt: %q %v", reply, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the halt reported as done", func() bool {
		sc := state(t, ctl).Power.LastStateChange
		return sc != nil && *sc == vmxsim.StateChange{State: 1, Success: true}
	})
	if s := out.String(); !strings.Contains(s, "power action recorded, not performed") || !strings.Contains(s, "action=poweroff") {
		t.Fatalf("the halt was not recorded:\n%s", s)
	}
	if b, err := os.ReadFile(mark); err == nil {
		t.Fatalf("vmtoolsd ran systemctl %q: it acted on the halt", b)
	}
	if strings.Contains(out.String(), "logind") {
		t.Fatal("vmtoolsd tried logind")
	}
}
