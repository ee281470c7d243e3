package e2e

import (
	"context"
	"net"
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
)

// vmtoolsd is a running vmtoolsd under test.
type vmtoolsd struct {
	cmd    *exec.Cmd
	out    *testutil.SyncBuffer
	record string // the record runner's file
	conf   string // its conf dir (tools.conf, power scripts)
	start  time.Time
	done   <-chan struct{} // closed once it has exited (testutil.StartLogged)
}

// startVmtoolsd runs the real vmtoolsd against sim with the record power
// runner, in its own PID namespace (so it is PID 1 of a namespace of its
// own, and nothing it or a script starts outlives it), with
// GOVMTOOLS_SIMULATED=1 as vmxsim's children have.
func startVmtoolsd(t *testing.T, sim *testutil.Sim, confDir string, env []string, args ...string) *vmtoolsd {
	t.Helper()
	testutil.RequireRoot(t) // CLONE_NEWPID
	if confDir == "" {
		confDir = t.TempDir()
	}
	v := &vmtoolsd{conf: confDir, record: filepath.Join(confDir, "power.record")}
	all := append([]string{"--rpc", sim.Mode(), "--conf-dir", confDir, "--power-runner", "record:" + v.record, "--log-level", "debug"}, args...)
	v.cmd = exec.Command(filepath.Join(sim.Bin, "vmtoolsd"), all...)
	v.cmd.Env = append(append(os.Environ(), "GOVMTOOLS_SIMULATED=1"), env...)
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: testutil.NewPIDCloneflag()}
	v.start = time.Now()
	v.out, v.done = testutil.StartLogged(t, "vmtoolsd", v.cmd)
	return v
}

// stop sends SIGTERM and requires a clean exit.
func (v *vmtoolsd) stop(t *testing.T) {
	t.Helper()
	v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
		t.Fatal("vmtoolsd did not stop within 10 s of SIGTERM")
	}
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("vmtoolsd exited %d", code)
	}
}

func (v *vmtoolsd) recorded() []string {
	b, _ := os.ReadFile(v.record)
	return strings.Fields(string(b))
}

func state(t *testing.T, ctl *vmxsim.Ctl) vmxsim.State {
	t.Helper()
	s, err := ctl.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// govc runs the test-built govc against the simulator's vSphere front end.
func govc(t *testing.T, ctl *vmxsim.Ctl, args ...string) string {
	t.Helper()
	out, err := govcErr(t, ctl, args...)
	if err != nil {
		t.Fatalf("govc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func govcErr(t *testing.T, ctl *vmxsim.Ctl, args ...string) (string, error) {
	t.Helper()
	u, err := ctl.VSphereURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Govc(t), args...)
	cmd.Env = append(os.Environ(), "GOVC_URL="+u, "GOVC_INSECURE=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// collect reads VM properties as a vSphere client sees them.
func collect(t *testing.T, ctl *vmxsim.Ctl, props ...string) []string {
	t.Helper()
	return strings.Fields(govc(t, ctl, append([]string{"object.collect", "-s", "vm/govmtools-vm"}, props...)...))
}

// waitToolsRunning waits for the host to see tools running with govmtools'
// version, version type 4 and every capability in caps, and returns that
// state.
func waitToolsRunning(t *testing.T, ctl *vmxsim.Ctl, timeout time.Duration, caps ...string) vmxsim.State {
	t.Helper()
	var s vmxsim.State
	testutil.WaitFor(t, timeout, "tools running with version and capabilities", func() bool {
		s = state(t, ctl)
		if !s.Tools.Running || s.Tools.VersionType != "4" || s.Tools.Version != "12352" {
			return false
		}
		for _, c := range caps {
			if !slices.Contains(s.Capabilities, c) {
				return false
			}
		}
		return true
	})
	return s
}

// waitVSphereRunning waits for vSphere to show tools running, green, with
// govmtools' version and install type.
func waitVSphereRunning(t *testing.T, ctl *vmxsim.Ctl) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "vSphere to show tools running and a green heartbeat", func() bool {
		got := collect(t, ctl, "guest.toolsRunningStatus", "guestHeartbeatStatus", "guest.toolsVersion", "guest.toolsInstallType")
		return slices.Equal(got, []string{"guestToolsRunning", "green", "12352", "guestToolsTypeOpenVMTools"})
	})
}

// waitStoppedGray checks what an orderly stop of vmtoolsd leaves: the HGFS
// capability withdrawn, the heartbeat red then gray, and vSphere gray.
func waitStoppedGray(t *testing.T, ctl *vmxsim.Ctl) {
	t.Helper()
	// The orderly stop withdrew the HGFS capability.
	if s := state(t, ctl); !slices.Contains(s.Capabilities, "tools.capability.hgfs_server toolbox 0") {
		t.Errorf("capabilities after stop: %q", s.Capabilities)
	}
	var seen []string
	testutil.WaitFor(t, 15*time.Second, "heartbeat red, then gray", func() bool {
		hb := state(t, ctl).Tools.Heartbeat
		if len(seen) == 0 || seen[len(seen)-1] != hb {
			seen = append(seen, hb)
		}
		return hb == "gray"
	})
	if i := slices.Index(seen, "red"); i < 0 || seen[len(seen)-1] != "gray" {
		t.Fatalf("heartbeat went %v, want red before gray", seen)
	}
	testutil.WaitFor(t, 10*time.Second, "vSphere to show gray", func() bool {
		return slices.Equal(collect(t, ctl, "guest.toolsRunningStatus", "guestHeartbeatStatus"), []string{"guestToolsNotRunning", "gray"})
	})
}

// haltThenShutdownGuest sends `ctl power halt`, then Shut Down Guest from
// vSphere (govc vm.power -s), and checks that each is recorded as a
// poweroff and reported as a successful state change.
func haltThenShutdownGuest(t *testing.T, ctl *vmxsim.Ctl, recorded func() []string) {
	t.Helper()
	lastState := func() *vmxsim.StateChange { return state(t, ctl).Power.LastStateChange }
	if reply, err := ctl.Power(t.Context(), "halt"); err != nil || reply != "OK " {
		t.Fatalf("ctl power halt: %q %v", reply, err)
	}
	if got := recorded(); !slices.Equal(got, []string{"poweroff"}) {
		t.Fatalf("recorded %q", got)
	}
	if sc := lastState(); sc == nil || *sc != (vmxsim.StateChange{State: 1, Success: true}) {
		t.Fatalf("lastStateChange %+v", sc)
	}

	if out := govc(t, ctl, "vm.power", "-s", "govmtools-vm"); !strings.Contains(out, "OK") {
		t.Fatalf("govc: %s", out)
	}
	testutil.WaitFor(t, 10*time.Second, "second poweroff recorded", func() bool { return len(recorded()) == 2 })
	if sc := lastState(); sc == nil || *sc != (vmxsim.StateChange{State: 1, Success: true}) {
		t.Fatalf("lastStateChange %+v", sc)
	}
}

// TestVmtoolsdToolsRunning is the first "Done when": soon after start
// (how soon is the bench's "process start to tools running" row; here
// only a 10 s hang detector) the host sees tools running with version, type and capabilities; a
// vSphere client sees guestToolsRunning and a green heartbeat; stopping
// vmtoolsd turns the heartbeat red, then gray.
func TestVmtoolsdToolsRunning(t *testing.T) {
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	testutil.Govc(t) // build before the clock starts
	conf := t.TempDir()
	// A tools.conf with mistakes: warned about, never fatal.
	os.WriteFile(filepath.Join(conf, "tools.conf"), []byte("[timeSync]\ndisable-all=perhaps\nno-such-key=1\n[powerops\n"), 0o644)
	v := startVmtoolsd(t, sim, conf, nil)

	s := waitToolsRunning(t, ctl, 10*time.Second, "tools.capability.statechange ", "tools.capability.softpowerop_retry ", "tools.capability.hgfs_server toolbox 1")
	t.Logf("tools running %v after start", time.Since(v.start))
	if s.Tools.Heartbeat != "green" || !strings.Contains(s.Guestinfo["vmtools.description"], "govmtools") || s.Guestinfo["vmtools.versionNumber"] != "12352" {
		t.Errorf("state %+v", s)
	}
	out := v.out.String()
	for _, want := range []string{`disable-all: \"perhaps\" is not a boolean`, "no-such-key: unknown key", `malformed group header`} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning %q in output", want)
		}
	}

	waitVSphereRunning(t, ctl)

	v.stop(t)
	waitStoppedGray(t, ctl)
	// Without tools, Shut Down Guest is refused as vCenter refuses it.
	if out, err := govcErr(t, ctl, "vm.power", "-s", "govmtools-vm"); err == nil || !strings.Contains(out, "ToolsUnavailable") {
		t.Fatalf("ShutdownGuest without tools: %v\n%s", err, out)
	}
}

// TestVmtoolsdPowerOps is the second "Done when": `ctl power halt` and
// govc `vm.power -s` are recorded as a poweroff and reported as state 1,
// success; with a failing poweroff script the failure is reported and the
// second request succeeds.
func TestVmtoolsdPowerOps(t *testing.T) {
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0")
	ctl := vmxsim.NewCtl(sim.Dir)
	v := startVmtoolsd(t, sim, "", nil)
	testutil.WaitFor(t, 10*time.Second, "statechange capability", func() bool {
		return slices.Contains(state(t, ctl).Capabilities, "tools.capability.statechange ")
	})
	lastState := func() *vmxsim.StateChange { return state(t, ctl).Power.LastStateChange }

	haltThenShutdownGuest(t, ctl, v.recorded)
	// The VM stays on until the guest actually halts.
	testutil.WaitFor(t, 10*time.Second, "the VM on with tools running after ShutdownGuest", func() bool {
		return slices.Equal(collect(t, ctl, "runtime.powerState", "guest.toolsRunningStatus"), []string{"poweredOn", "guestToolsRunning"})
	})

	// A failing poweroff script, configured while running (tools.conf is
	// reloaded on change; SIGHUP forces it too).
	script := filepath.Join(v.conf, "failing-poweroff")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 7\n"), 0o755)
	os.WriteFile(filepath.Join(v.conf, "tools.conf"), []byte("[powerops]\npoweroff-script=failing-poweroff\n"), 0o644)
	v.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "tools.conf reload", func() bool { return strings.Contains(v.out.String(), "tools.conf reloaded") })

	if reply, err := ctl.Power(t.Context(), "halt"); err != nil || reply != "OK " {
		t.Fatalf("halt with failing script: %q %v", reply, err)
	}
	testutil.WaitFor(t, 10*time.Second, "failure reported", func() bool {
		sc := lastState()
		return sc != nil && *sc == vmxsim.StateChange{State: 1, Success: false}
	})
	if len(v.recorded()) != 2 {
		t.Fatalf("a failed script must not power off: %q", v.recorded())
	}
	govc(t, ctl, "vm.power", "-s", "govmtools-vm")
	testutil.WaitFor(t, 10*time.Second, "second request succeeds", func() bool {
		sc := lastState()
		return sc != nil && *sc == vmxsim.StateChange{State: 1, Success: true} && len(v.recorded()) == 3
	})
	log := readLog(t, sim)
	for _, want := range []string{"Guest: Executing script for state change 'OS_Halt'.", "Guest: Script exit code: 7, success = 0", "Guest: Initiating halt."} {
		if !strings.Contains(log, want) {
			t.Errorf("vmware.log lacks %q", want)
		}
	}

	// Reboot, and the transitions that only report.
	os.Remove(filepath.Join(v.conf, "tools.conf"))
	v.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "reboot recorded", func() bool {
		if reply, _ := ctl.Power(t.Context(), "reboot"); reply != "OK " {
			return false
		}
		sc := lastState()
		return sc != nil && *sc == vmxsim.StateChange{State: 2, Success: true} && v.recorded()[len(v.recorded())-1] == "reboot"
	})
	for op, id := range map[string]int{"poweron": 3, "resume": 4, "suspend": 5} {
		if reply, err := ctl.Power(t.Context(), op); err != nil || reply != "OK " {
			t.Fatalf("%s: %q %v", op, reply, err)
		}
		if sc := lastState(); sc == nil || *sc != (vmxsim.StateChange{State: id, Success: true}) {
			t.Fatalf("%s: %+v", op, sc)
		}
	}

	// The guest goes away after a successful halt: the VM powers off and
	// its tools state is cleared; powering on brings tools back with
	// OS_PowerOn.
	if reply, _ := ctl.Power(t.Context(), "halt"); reply != "OK " {
		t.Fatal(reply)
	}
	v.stop(t)
	testutil.WaitFor(t, 10*time.Second, "vSphere to show the VM off", func() bool {
		return slices.Equal(collect(t, ctl, "runtime.powerState", "guest.toolsRunningStatus"), []string{"poweredOff", "guestToolsNotRunning"})
	})
	if s := state(t, ctl); s.Tools.Version != "" || len(s.Capabilities) != 0 {
		t.Fatalf("tools state not cleared at power-off: %+v", s.Tools)
	}
}

func readLog(t *testing.T, sim *testutil.Sim) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sim.Dir, "vmware.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVmtoolsdResilience: a reset storm is answered and changes nothing;
// a VMX restart is survived with the daemon's state intact (a failed
// halt before the restart makes the halt after it the second try);
// unknown commands and bad options get vmtoolsd's answers.
func TestVmtoolsdResilience(t *testing.T) {
	dir := t.TempDir()
	sim := testutil.StartSimDir(t, dir)
	ctl := vmxsim.NewCtl(dir)
	conf := t.TempDir()
	os.WriteFile(filepath.Join(conf, "fail"), []byte("#!/bin/sh\nexit 1\n"), 0o755)
	os.WriteFile(filepath.Join(conf, "tools.conf"), []byte("[powerops]\npoweroff-script=fail\n"), 0o644)
	v := startVmtoolsd(t, sim, conf, nil)
	testutil.WaitFor(t, 10*time.Second, "tools running", func() bool { return state(t, ctl).Tools.VersionType == "4" })

	for _, tt := range []struct{ cmd, want string }{
		{"No_Such_Command x", "ERROR Unknown Command"},
		{"Set_Option broadcastIP", "ERROR Unknown or invalid option"},
		{"Set_Option copypaste 1", "OK "},
		{"Time_Synchronize 0", "ERROR Unable to sync time"}, // no host clock over unix:DIR
		{"ping", "OK "},
	} {
		if got, err := ctl.TCLO(t.Context(), tt.cmd); err != nil || got != tt.want {
			t.Errorf("%q -> %q %v, want %q", tt.cmd, got, err, tt.want)
		}
	}
	for i := range 50 {
		if got, err := ctl.TCLO(t.Context(), "reset"); err != nil || got != "OK ATR toolbox" {
			t.Fatalf("reset %d: %q %v", i, got, err)
		}
	}
	if got, _ := ctl.TCLO(t.Context(), "Capabilities_Register"); got != "OK " {
		t.Fatalf("after the storm: %q", got)
	}
	if s := state(t, ctl); !s.Tools.Running || s.Tools.Heartbeat != "green" {
		t.Fatalf("after the storm: %+v", s.Tools)
	}

	// A failing halt, then the VMX restarts.
	ctl.Power(t.Context(), "halt")
	testutil.WaitFor(t, 10*time.Second, "failure reported", func() bool {
		sc := state(t, ctl).Power.LastStateChange
		return sc != nil && !sc.Success
	})
	sim.Stop(t)
	sim = testutil.StartSimDir(t, dir)
	testutil.WaitFor(t, 15*time.Second, "tools back after the VMX restart", func() bool {
		s := state(t, ctl)
		return s.Tools.Running && slices.Contains(s.Capabilities, "tools.capability.statechange ")
	})
	if reply, err := ctl.Power(t.Context(), "halt"); err != nil || reply != "OK " {
		t.Fatalf("halt after restart: %q %v", reply, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the second try to go through", func() bool {
		sc := state(t, ctl).Power.LastStateChange
		return sc != nil && *sc == vmxsim.StateChange{State: 1, Success: true} && slices.Equal(v.recorded(), []string{"poweroff"})
	})
	v.stop(t)
}

// TestVmtoolsdSystemdNotify runs vmtoolsd as systemd would, with a real
// notify socket: READY=1 after the first reset, STATUS lines, WATCHDOG=1
// while the TCLO loop lives and none once it stalls, STOPPING=1 at the
// end.
func TestVmtoolsdSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sim := testutil.StartSimDir(t, dir)
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 1000)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ln.Read(b)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(b[:n])
		}
	}()
	v := startVmtoolsd(t, sim, "", []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=600000"})
	next := func(what string, match func(string) bool, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("socket closed waiting for %s", what)
				}
				if match(m) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %s within %v", what, within)
			}
		}
	}
	has := func(s string) func(string) bool { return func(m string) bool { return strings.Contains(m, s) } }
	next("READY=1", has("READY=1"), 10*time.Second)
	next("WATCHDOG=1", has("WATCHDOG=1"), 10*time.Second)

	// The VMX goes away: the loop stalls, the watchdog starves.
	sim.Stop(t)
	next("STATUS about the lost channel", has("STATUS="), 10*time.Second)
	time.Sleep(700 * time.Millisecond)
	for len(msgs) > 0 {
		<-msgs
	}
	stall := time.After(time.Second)
wait:
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, "WATCHDOG=1") {
				t.Fatal("watchdog fed while the TCLO loop had no VMX")
			}
		case <-stall:
			break wait
		}
	}
	sim = testutil.StartSimDir(t, dir)
	next("WATCHDOG=1 after the VMX is back", has("WATCHDOG=1"), 15*time.Second)
	v.cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1", has("STOPPING=1"), 10*time.Second)
	<-v.done
}
