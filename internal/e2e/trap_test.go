package e2e

import (
	"bufio"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// backdoorStats reads the backdoor counters from ctl state.
func backdoorStats(t *testing.T, tr *testutil.Trap) map[string]float64 {
	t.Helper()
	st := tr.State(t)
	bd, ok := st["backdoor"].(map[string]any)
	if !ok {
		t.Fatalf("ctl state has no backdoor section: %v", st)
	}
	out := map[string]float64{}
	for k, v := range bd {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

func trapGuestinfo(t *testing.T, tr *testutil.Trap) map[string]any {
	t.Helper()
	gi, _ := tr.State(t)["guestinfo"].(map[string]any)
	return gi
}

// TestTrapRPCTool is the first "done when" of the trap: our vmware-rpctool,
// with its default --rpc auto, reaches the simulated VMX over the real
// backdoor instructions under vmxsim run, on the high-bandwidth path and
// (with --lb) the low-bandwidth one; messages of every length mod 4 and of
// 60 KiB round-trip exactly, and vmxsim ctl state shows what was set.
// --no-vsock keeps it off vsock, which --rpc auto would try first.
func TestTrapRPCTool(t *testing.T) {
	for _, mode := range []string{"hb", "lb"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			args := []string{"--no-vsock"}
			if mode == "lb" {
				args = append(args, "--lb")
			}
			tr := testutil.StartTrap(t, args...)
			rpctool := filepath.Join(tr.Bin, "vmware-rpctool")
			for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 60 << 10, 60<<10 + 1, 60<<10 + 2, 60<<10 + 3} {
				v := value(n)
				key := "len" + strconv.Itoa(n)
				if out, errOut, code := tr.Run(t, rpctool, "info-set guestinfo."+key+" "+v); code != 0 || out != "\n" {
					t.Fatalf("info-set len %d: code %d stdout %q stderr %q\n%s", n, code, out, errOut, tr.Logs())
				}
				out, errOut, code := tr.Run(t, rpctool, "info-get guestinfo."+key)
				if code != 0 || out != v+"\n" {
					t.Fatalf("info-get len %d: code %d, %d bytes back (stderr %q)", n, code, len(out), errOut)
				}
				if got, _ := trapGuestinfo(t, tr)[key].(string); got != v {
					t.Fatalf("ctl state guestinfo.%s has %d bytes, want %d", key, len(got), n)
				}
			}
			// The host's refusal comes back as over vmxsim serve.
			if _, errOut, code := tr.Run(t, rpctool, "info-get guestinfo.missing"); code != 1 || errOut != "No value found\n" {
				t.Fatalf("missing key: %d %q", code, errOut)
			}
			bd := backdoorStats(t, tr)
			hb := bd["hbOut"] + bd["hbIn"]
			if mode == "hb" && (bd["hbOut"] == 0 || bd["hbIn"] == 0) || mode == "lb" && hb != 0 {
				t.Fatalf("%s: backdoor counters %v", mode, bd)
			}
			if bd["channels"] != 0 {
				t.Fatalf("channels left open: %v", bd)
			}
			// vmware-checkvm over the backdoor.
			if out, _, code := tr.Run(t, filepath.Join(tr.Bin, "vmware-checkvm")); code != 0 || !strings.Contains(out, "version 6") {
				t.Fatalf("checkvm: %d %q", code, out)
			}
		})
	}
}

// TestTrapCPUIDAndSeccomp: under the trap the CPU says VMware without
// VMCALL/VMMCALL, and the seccomp filter makes iopl/ioperm no-ops and
// refuses AF_VSOCK (under --no-vsock; by default the socket is made a unix
// socket), clock setting and reboot; FIFREEZE/FITHAW (on /dev/null, never
// allowed) are recorded no-ops that return 0.
func TestTrapCPUIDAndSeccomp(t *testing.T) {
	tr := testutil.StartTrap(t, "--no-vsock")
	probe := filepath.Join(tr.Bin, "bdprobe")
	out, errOut, code := tr.Run(t, probe, "cpuid")
	if code != 0 || strings.TrimSpace(out) != `signature="VMwareVMware" leaf40000010.ecx=0x0` {
		t.Fatalf("cpuid: %d %q %q", code, out, errOut)
	}
	out, errOut, code = tr.Run(t, probe, "seccomp")
	want := "iopl=ok ioperm=ok socket_vsock=EAFNOSUPPORT socket_unix=ok settimeofday=EPERM clock_settime=EPERM adjtimex=EPERM clock_adjtime=EPERM reboot=EPERM fifreeze=ok fithaw=ok"
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("seccomp: %d\n got %q\nwant %q\n%s", code, out, want, errOut)
	}
	vs := testutil.StartTrap(t)
	out, errOut, code = vs.Run(t, probe, "seccomp")
	if want := strings.Replace(want, "socket_vsock=EAFNOSUPPORT", "socket_vsock=ok", 1); code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("seccomp under the vsock trap: %d\n got %q\nwant %q\n%s", code, out, want, errOut)
	}
	// The environment tells tools they are simulated.
	if out, _, _ := tr.Run(t, "/bin/sh", "-c", "echo $GOVMTOOLS_SIMULATED $VMXSIM_DIR"); out != "1 "+tr.Dir+"\n" {
		t.Fatalf("environment: %q", out)
	}
	// The probe refuses to try AF_VSOCK where no filter is in force.
	if _, _, code := testutil.RunBinary(t, probe, "seccomp"); code != 4 {
		t.Fatalf("seccomp probe outside the trap: exit %d, want 4", code)
	}
}

// TestAutoOutsideTrap: outside the trap, --rpc auto (and backdoor) say
// "not a VMware VM" and exit normally: no backdoor instruction runs.
func TestAutoOutsideTrap(t *testing.T) {
	bin := testutil.Binaries(t)
	for _, mode := range []string{"auto", "backdoor"} {
		_, errOut, code := testutil.RunBinary(t, filepath.Join(bin, "vmware-rpctool"), "--rpc", mode, "info-get guestinfo.x")
		if code != 2 || !strings.Contains(errOut, "not a VMware VM") {
			t.Fatalf("rpctool --rpc %s: exit %d %q", mode, code, errOut)
		}
		_, errOut, code = testutil.RunBinary(t, filepath.Join(bin, "vmware-checkvm"), "--rpc", mode)
		if code != 1 || !strings.Contains(errOut, "not a VMware VM") {
			t.Fatalf("checkvm --rpc %s: exit %d %q", mode, code, errOut)
		}
	}
	if _, errOut, code := testutil.RunBinary(t, filepath.Join(bin, "bdprobe"), "getversion", "1"); code != 3 || !strings.Contains(errOut, "not a VMware VM") {
		t.Fatalf("bdprobe outside the trap: exit %d %q", code, errOut)
	}
}

// TestTrapExitStatus: vmxsim run exits with the program's status, 128+n
// when signal n killed it (a crash included).
func TestTrapExitStatus(t *testing.T) {
	cases := []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -SEGV $$", 128 + int(syscall.SIGSEGV)},
		{"kill -ABRT $$", 128 + int(syscall.SIGABRT)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	}
	for _, c := range cases {
		if _, errOut, code, _ := testutil.RunTrap(t, nil, "/bin/sh", "-c", c.script); code != c.code {
			t.Errorf("%q: exit %d, want %d (%s)", c.script, code, c.code, errOut)
		}
	}
	// A Go program that crashes on a nil pointer: Go's own SIGSEGV passes
	// through the trap, the runtime panics, and the status is Go's 2.
	bin := testutil.Binaries(t)
	if _, errOut, code, _ := testutil.RunTrap(t, nil, filepath.Join(bin, "bdprobe"), "crash"); code != 2 || !strings.Contains(errOut, "nil pointer dereference") {
		t.Errorf("crashing Go program under the trap: exit %d %s", code, errOut)
	}
	if _, errOut, code, _ := testutil.RunTrap(t, nil, "/no/such/program"); code == 0 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing program: %d %q", code, errOut)
	}
}

// TestTrapSIGTERM: `vmxsim run` stopped with SIGTERM (by systemd, a
// harness, kill(1)) passes it to its program and exits with the program's
// status; a program that ignores it is killed 5 s later, with everything
// it started.
func TestTrapSIGTERM(t *testing.T) {
	testutil.RequireTrap(t)
	bin := testutil.Binaries(t)
	cases := []struct {
		name, script string
		code         int
		within       time.Duration
	}{
		{"handled", `trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done`, 7, 3 * time.Second},
		{"ignored", `trap '' TERM; sleep 1000 & echo ready; while :; do sleep 0.05; done`, 128 + int(syscall.SIGKILL), 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, "vmxsim"), "run", "--dir", t.TempDir(), "--", "/bin/sh", "-c", c.script)
			errOut := &testutil.SyncBuffer{}
			cmd.Stderr = errOut
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(out)
			line, err := r.ReadString('\n')
			done := make(chan error, 1)
			go func() {
				io.Copy(io.Discard, r) // until the program ends
				done <- cmd.Wait()
			}()
			if line != "ready\n" {
				cmd.Process.Kill()
				<-done
				t.Fatalf("program did not start: %q %v\n%s", line, err, errOut)
			}
			start := time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(c.within):
				cmd.Process.Kill()
				<-done
				t.Fatalf("vmxsim run still running %v after SIGTERM\n%s", c.within, errOut)
			}
			if got := cmd.ProcessState.ExitCode(); got != c.code {
				t.Errorf("exit %d after %v, want %d\n%s", got, time.Since(start), c.code, errOut)
			}
		})
	}
}

// TestTrapKilledMidCall: processes killed with a half-sent message on an
// open channel, or in the middle of a trapped instruction, leave vmxsim
// serving; their channels are freed.
func TestTrapKilledMidCall(t *testing.T) {
	tr := testutil.StartTrap(t)
	probe := filepath.Join(tr.Bin, "bdprobe")
	pid, output := tr.Start(t, probe, "hold")
	testutil.WaitFor(t, 10*time.Second, "bdprobe holding a half-sent message", func() bool {
		return strings.Contains(output(), "holding")
	})
	if bd := backdoorStats(t, tr); bd["channels"] != 1 {
		t.Fatalf("channels %v while held", bd)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	testutil.WaitFor(t, 10*time.Second, "the killed process's channel freed", func() bool {
		return backdoorStats(t, tr)["channels"] == 0
	})
	// Kill busy callers at random moments: most deaths land while the
	// process sits in a trapped instruction.
	for i := range 8 {
		pid, _ := tr.Start(t, probe, "getversion", "100000000")
		time.Sleep(time.Duration(5+rand.IntN(40)) * time.Millisecond)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
	}
	tr.Run(t, "/bin/sh", "-c", "wait")
	rpctool := filepath.Join(tr.Bin, "vmware-rpctool")
	if _, errOut, code := tr.Run(t, rpctool, "info-set guestinfo.after still serving"); code != 0 {
		t.Fatalf("after the kills: %d %s\n%s", code, errOut, tr.Logs())
	}
	if got := trapGuestinfo(t, tr)["after"]; got != "still serving" {
		t.Fatalf("guestinfo.after = %v", got)
	}
}

// TestTrapFaultInjection: checkpoints and channel resets injected through
// vmxsim ctl while a process keeps an RPCI channel busy: the message layer
// restarts after CPT and the client reopens after a reset, so every round
// trip still succeeds. (--no-vsock: the setup's rpctool takes the backdoor
// too, and its channel is one of the opens counted.)
func TestTrapFaultInjection(t *testing.T) {
	for _, mode := range []string{"hb", "lb"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--no-vsock"}
			if mode == "lb" {
				args = append(args, "--lb")
			}
			tr := testutil.StartTrap(t, args...)
			tr.Run(t, filepath.Join(tr.Bin, "vmware-rpctool"), "info-set guestinfo.k "+value(99))
			n := map[string]string{"hb": "8000", "lb": "1500"}[mode]
			pid, output := tr.Start(t, filepath.Join(tr.Bin, "bdprobe"), "rpci", n, "info-get guestinfo.k")
			for i := range 20 {
				time.Sleep(10 * time.Millisecond)
				what := "checkpoint"
				if i%5 == 4 {
					what = "reset"
				}
				tr.Ctl(t, "backdoor", what)
			}
			if code := tr.Wait(t, pid); code != 0 {
				t.Fatalf("bdprobe rpci under injected faults: exit %d\n%s", code, output())
			}
			bd := backdoorStats(t, tr)
			if bd["cpts"] == 0 || bd["opens"] < 5 {
				t.Fatalf("the faults did not land (the probe finished too soon?): %v", bd)
			}
		})
	}
}

// TestTrapTCLO: our TCLO loop (rpc.Loop over backdoor.Channel) polls the
// simulated VMX through the real instructions: the VMX's reset and pings
// keep the heartbeat green, ctl tclo reaches the guest's handler, and when
// the process is killed its channel is closed and tools go gray.
func TestTrapTCLO(t *testing.T) {
	tr := testutil.StartTrap(t, "--ping-interval", "100ms", "--tools-timeout", "500ms")
	pid, output := tr.Start(t, filepath.Join(tr.Bin, "bdprobe"), "tclo")
	tools := func() map[string]any { m, _ := tr.State(t)["tools"].(map[string]any); return m }
	testutil.WaitFor(t, 10*time.Second, "tools running, heartbeat green", func() bool {
		m := tools()
		return m["running"] == true && m["heartbeat"] == "green"
	})
	if out := tr.Ctl(t, "tclo", "Echo over the backdoor"); out != "OK over the backdoor\n" {
		t.Fatalf("ctl tclo: %q (%s)", out, output())
	}
	// A VMX-side reset: the loop reopens, the VMX resets it again.
	tr.Ctl(t, "backdoor", "reset")
	testutil.WaitFor(t, 10*time.Second, "tclo answered after a channel reset", func() bool {
		out, _, code := testutil.RunBinary(t, filepath.Join(tr.Bin, "vmxsim"), "ctl", "--dir", tr.Dir, "tclo", "Echo again")
		return code == 0 && out == "OK again\n"
	})
	syscall.Kill(pid, syscall.SIGKILL)
	tr.Wait(t, pid)
	testutil.WaitFor(t, 10*time.Second, "tools gray after the process died", func() bool {
		return tools()["heartbeat"] == "gray"
	})
}
