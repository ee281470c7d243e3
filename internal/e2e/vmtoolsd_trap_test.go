package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// trapVmtoolsd is our vmtoolsd running under `vmxsim run` (the backdoor
// path: --rpc auto finds the trapped backdoor), in a PID and mount
// namespace of its own made by unshare(1): it is PID 1 there, sees only
// its own descendants in /proc, and nothing it or a power script starts
// outlives it. The trap follows it through unshare's fork.
type trapVmtoolsd struct {
	tr     *testutil.Trap
	pid    int // unshare's, as the trap's shell knows it
	vpid   int // vmtoolsd's, in the test's PID namespace
	output func() string
	conf   string
	record string
	start  time.Time
	exited bool
}

// startTrapVmtoolsd starts vmtoolsd under tr with the record power runner
// and debug logs; args are extra flags.
func startTrapVmtoolsd(t *testing.T, tr *testutil.Trap, conf string, args ...string) *trapVmtoolsd {
	t.Helper()
	testutil.RequireRoot(t) // CLONE_NEWPID, CLONE_NEWNS
	unshare, err := exec.LookPath("unshare")
	testutil.Require(t, err == nil, "unshare (util-linux)", "apt-get install util-linux")
	if conf == "" {
		conf = t.TempDir()
	}
	v := &trapVmtoolsd{tr: tr, conf: conf, record: filepath.Join(conf, "power.record")}
	argv := append([]string{"--pid", "--fork", "--mount-proc", "--kill-child",
		filepath.Join(tr.Bin, "vmtoolsd"), "--conf-dir", conf, "--power-runner", "record:" + v.record, "--log-level", "debug"}, args...)
	v.start = time.Now()
	v.pid, v.output = tr.Start(t, unshare, argv...)
	t.Cleanup(func() {
		if !v.exited {
			// --kill-child: the namespace's init, and with it
			// everything in the namespace, dies with unshare.
			syscall.Kill(v.pid, syscall.SIGKILL)
			tr.Wait(t, v.pid)
		}
		if t.Failed() {
			t.Logf("vmtoolsd output:\n%s", v.output())
		}
	})
	testutil.WaitFor(t, 10*time.Second, "vmtoolsd started in its namespace", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(v.pid) + "/task/" + strconv.Itoa(v.pid) + "/children")
		f := strings.Fields(string(b))
		if len(f) != 1 {
			return false
		}
		comm, _ := os.ReadFile("/proc/" + f[0] + "/comm")
		if strings.TrimSpace(string(comm)) != "vmtoolsd" {
			return false
		}
		v.vpid, _ = strconv.Atoi(f[0])
		return true
	})
	return v
}

// status reads a field of /proc/VPID/status.
func (v *trapVmtoolsd) status(t *testing.T, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(v.vpid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if val, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(val)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, v.vpid)
	return ""
}

// checkIsolatedAndTraced: vmtoolsd is PID 1 of a namespace of its own, and
// the trap (vmxsim) traces it.
func (v *trapVmtoolsd) checkIsolatedAndTraced(t *testing.T) {
	t.Helper()
	if ns := strings.Fields(v.status(t, "NSpid")); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("NSpid %q: vmtoolsd is not PID 1 of its own namespace", ns)
	}
	tracer := v.status(t, "TracerPid")
	comm, _ := os.ReadFile("/proc/" + tracer + "/comm")
	if tracer == "0" || strings.TrimSpace(string(comm)) != "vmxsim" {
		t.Errorf("vmtoolsd traced by %s (%q), want the trap", tracer, comm)
	}
}

// stop sends SIGTERM to vmtoolsd and requires a clean exit.
func (v *trapVmtoolsd) stop(t *testing.T) {
	t.Helper()
	syscall.Kill(v.vpid, syscall.SIGTERM)
	code := v.tr.Wait(t, v.pid)
	v.exited = true
	if code != 0 {
		t.Fatalf("vmtoolsd exited %d\n%s", code, v.output())
	}
}

func (v *trapVmtoolsd) recorded() []string {
	b, _ := os.ReadFile(v.record)
	return strings.Fields(string(b))
}

// TestTrapVmtoolsdToolsRunning is TestVmtoolsdToolsRunning over the
// backdoor (--no-vsock): under `vmxsim run --vsphere`, soon after start
// (timed by the bench, not here) the host sees
// tools running with version, type and capabilities; a vSphere client sees
// guestToolsRunning and a green heartbeat; stopping vmtoolsd turns the
// heartbeat red, then gray.
func TestTrapVmtoolsdToolsRunning(t *testing.T) {
	tr := testutil.StartTrap(t, "--no-vsock", "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(tr.Dir)
	testutil.Govc(t)
	v := startTrapVmtoolsd(t, tr, "")

	s := waitToolsRunning(t, ctl, 10*time.Second, "tools.capability.statechange ", "tools.capability.softpowerop_retry ", "tools.capability.hgfs_server toolbox 1", "tools.capability.features 36=0")
	t.Logf("tools running %v after start under the trap", time.Since(v.start))
	v.checkIsolatedAndTraced(t)
	if s.Tools.Heartbeat != "green" || !strings.Contains(s.Guestinfo["vmtools.description"], "govmtools") {
		t.Errorf("state %+v", s)
	}
	// Everything crossed the backdoor: the channels are the trap's.
	if bd := backdoorStats(t, tr); bd["opens"] < 2 || bd["channels"] < 2 {
		t.Errorf("backdoor counters %v", bd)
	}
	if out := v.output(); !strings.Contains(out, "rpc=auto") || !strings.Contains(out, "trying the backdoor") {
		t.Errorf("vmtoolsd did not take the backdoor:\n%s", out)
	}

	waitVSphereRunning(t, ctl)

	v.stop(t)
	waitStoppedGray(t, ctl)
}

// TestTrapVmtoolsdPowerOps is TestVmtoolsdPowerOps over the backdoor, with
// vmtoolsd in its own PID namespace: `ctl power halt` and govc `vm.power
// -s` are recorded as a poweroff and reported as state 1, success; with a
// failing poweroff script the failure is reported and the second request
// succeeds.
func TestTrapVmtoolsdPowerOps(t *testing.T) {
	tr := testutil.StartTrap(t, "--vsphere", "127.0.0.1:0")
	ctl := vmxsim.NewCtl(tr.Dir)
	testutil.Govc(t)
	v := startTrapVmtoolsd(t, tr, "")
	testutil.WaitFor(t, 10*time.Second, "statechange capability", func() bool {
		return slices.Contains(state(t, ctl).Capabilities, "tools.capability.statechange ")
	})
	v.checkIsolatedAndTraced(t)
	lastState := func() *vmxsim.StateChange { return state(t, ctl).Power.LastStateChange }

	haltThenShutdownGuest(t, ctl, v.recorded)

	// A failing poweroff script, configured while running: tools.conf
	// is reloaded on change (SIGHUP forces it, sent to vmtoolsd itself:
	// unshare does not forward signals).
	script := filepath.Join(v.conf, "failing-poweroff")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 7\n"), 0o755)
	os.WriteFile(filepath.Join(v.conf, "tools.conf"), []byte("[powerops]\npoweroff-script=failing-poweroff\n"), 0o644)
	syscall.Kill(v.vpid, syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "tools.conf reload", func() bool { return strings.Contains(v.output(), "tools.conf reloaded") })
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
	b, err := os.ReadFile(filepath.Join(tr.Dir, "vmware.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Guest: Executing script for state change 'OS_Halt'.", "Guest: Script exit code: 7, success = 0", "Guest: Initiating halt."} {
		if !strings.Contains(string(b), want) {
			t.Errorf("vmware.log lacks %q", want)
		}
	}
	// The guest halts: the VM powers off and its tools state is cleared.
	v.stop(t)
	testutil.WaitFor(t, 10*time.Second, "vSphere to show the VM off", func() bool {
		return slices.Equal(collect(t, ctl, "runtime.powerState", "guest.toolsRunningStatus"), []string{"poweredOff", "guestToolsNotRunning"})
	})
}

// timeDecision returns the last time sync decision vmtoolsd logged: its
// message and the reason and daemon fields.
func timeDecision(out string) (msg, line string) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.Contains(l, "component=timesync") || !strings.Contains(l, "trigger=") {
			continue
		}
		if _, rest, ok := strings.Cut(l, ` msg="`); ok {
			msg, _, _ = strings.Cut(rest, `"`)
		}
		return msg, l
	}
	return "", ""
}

// TestTrapVmtoolsdTimeSync: under the trap the host clock comes from the
// backdoor's time commands (vmxsim's clock, which ctl moves away from the
// real time), and Time_Synchronize applies the policy end to end. The
// clock is never set: vmtoolsd runs with GOVMTOOLS_SIMULATED=1, so steps
// and slews are only logged (and the trap's seccomp filter would refuse
// them anyway). vmtoolsd's PID namespace hides this machine's own time
// daemon; a stand-in "chronyd" is then started inside it.
func TestTrapVmtoolsdTimeSync(t *testing.T) {
	tr := testutil.StartTrap(t, "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(tr.Dir)
	v := startTrapVmtoolsd(t, tr, "")
	testutil.WaitFor(t, 10*time.Second, "tools running", func() bool { return state(t, ctl).Tools.VersionType == "4" })

	steps := func() float64 { return backdoorStats(t, tr)["stopCatchups"] }
	sync := func(offset, cmd, wantMsg, wantIn string) {
		t.Helper()
		tr.Ctl(t, "backdoor", "clock", offset)
		before := steps()
		if got, err := ctl.TCLO(t.Context(), cmd); err != nil || got != "OK " {
			t.Fatalf("%s at %s: %q %v", cmd, offset, got, err)
		}
		msg, line := timeDecision(v.output())
		if msg != wantMsg || !strings.Contains(line, wantIn) {
			t.Fatalf("%s with the host %s ahead: decided %q (%s), want %q with %q", cmd, offset, msg, line, wantMsg, wantIn)
		}
		// STOPCATCHUP follows every step, and only a step.
		if stepped := steps() > before; stepped != (wantMsg == "guest clock stepped") {
			t.Fatalf("%s at %s: STOPCATCHUP sent %v", cmd, offset, stepped)
		}
	}
	sync("0s", "Time_Synchronize 0", "guest clock in sync", `reason="within tolerance"`)
	sync("90s", "Time_Synchronize 0", "guest clock stepped", `reason="no time daemon"`)
	sync("-30s", "Time_Synchronize 0", "guest clock slewing", `reason="guest ahead and backward steps not allowed"`)
	sync("-30s", "Time_Synchronize 1", "guest clock stepped", "offset=-")
	// The one-shot startup sync, once per process.
	sync("45s", "Set_Option time.synchronize.tools.startup 1", "guest clock stepped", "trigger=time.synchronize.tools.startup")
	if !strings.Contains(v.output(), "clock step recorded, not performed (simulated)") {
		t.Fatal("the simulated clock did not record the steps")
	}
	log, _ := os.ReadFile(filepath.Join(tr.Dir, "vmware.log"))
	if !strings.Contains(string(log), "vmtoolsd: WARN guest clock stepped") {
		t.Errorf("vmware.log lacks the step warning:\n%s", log)
	}

	// A time daemon in vmtoolsd's namespace: small offsets are left to
	// it (slewed), a resume-sized jump is stepped.
	chronyd := filepath.Join(t.TempDir(), "chronyd")
	sleep, _ := exec.LookPath("sleep")
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(chronyd, b, 0o755)
	daemon := exec.Command("nsenter", "--target", strconv.Itoa(v.vpid), "--pid", "--mount", "--", chronyd, "120")
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	daemonDone := make(chan struct{})
	go func() { daemon.Wait(); close(daemonDone) }()
	defer func() {
		// The stand-in dies with the namespace's init (vmtoolsd).
		syscall.Kill(v.vpid, syscall.SIGKILL)
		<-daemonDone
	}()
	testutil.WaitFor(t, 10*time.Second, "the stand-in chronyd in vmtoolsd's namespace", func() bool {
		tr.Ctl(t, "backdoor", "clock", "10s")
		ctl.TCLO(t.Context(), "Time_Synchronize 0")
		_, line := timeDecision(v.output())
		return strings.Contains(line, "daemon=chronyd")
	})
	sync("10s", "Time_Synchronize 0", "guest clock slewing", `reason="time daemon active and offset below the step threshold"`)
	sync("2h", "Time_Synchronize 0", "guest clock stepped", `reason="offset above the step threshold despite the time daemon"`)
}
