package testutil

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStartLoggedExit: a process that ends on its own closes done, with
// its exit code in ProcessState and both its stdout and its stderr in
// out; it got Pdeathsig SIGKILL.
func TestStartLoggedExit(t *testing.T) {
	cmd := exec.Command("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	out, done := StartLogged(t, "sh", cmd)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("done not closed within 10 s of a process that exits at once")
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if s := out.String(); !strings.Contains(s, "to-stdout\n") || !strings.Contains(s, "to-stderr\n") {
		t.Errorf("output %q lacks stdout or stderr", s)
	}
	if sig := cmd.SysProcAttr.Pdeathsig; sig != syscall.SIGKILL {
		t.Errorf("Pdeathsig %v, want SIGKILL", sig)
	}
}

// TestStartLoggedCleanup: at the test's end a process still running is
// killed and reaped, and its output is logged under its name only when
// the test has failed.
func TestStartLoggedCleanup(t *testing.T) {
	for _, failed := range []bool{false, true} {
		ft := &fakeT{}
		cmd := exec.Command("sh", "-c", "echo started; exec sleep 1000")
		out, done := StartLogged(ft, "sleeper", cmd)
		WaitFor(t, 10*time.Second, "the sleeper's first line", func() bool { return out.String() == "started\n" })
		select {
		case <-done:
			t.Fatal("done closed while the process runs")
		default:
		}
		pid := cmd.Process.Pid
		ft.failed = failed
		ft.cleanup()
		select {
		case <-done:
		default:
			t.Fatal("done still open after the cleanup")
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the cleanup ended the process with %v, want SIGKILL", cmd.ProcessState)
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("process %d still in /proc after the cleanup (not reaped): %v", pid, err)
		}
		var want []string
		if failed {
			want = []string{"sleeper output:\nstarted\n"}
		}
		if strings.Join(ft.logs, "|") != strings.Join(want, "|") || len(ft.logs) != len(want) {
			t.Errorf("failed=%v: logged %q, want %q", failed, ft.logs, want)
		}
	}
}

// TestStartLoggedSysProcAttr: the caller's SysProcAttr is kept, its own
// Pdeathsig included; only a missing Pdeathsig becomes SIGKILL.
func TestStartLoggedSysProcAttr(t *testing.T) {
	for _, c := range []struct {
		given, want syscall.Signal
	}{{0, syscall.SIGKILL}, {syscall.SIGTERM, syscall.SIGTERM}} {
		cmd := exec.Command("true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: c.given}
		_, done := StartLogged(t, "true", cmd)
		<-done
		if a := cmd.SysProcAttr; !a.Setpgid || a.Pdeathsig != c.want {
			t.Errorf("Pdeathsig %v given: SysProcAttr became %+v, want Setpgid and Pdeathsig %v", c.given, a, c.want)
		}
	}
}

// TestStartLoggedStartFails: a process that cannot start fails the test,
// naming it, and leaves no cleanup behind.
func TestStartLoggedStartFails(t *testing.T) {
	ft := &fakeT{}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		StartLogged(ft, "missing", exec.Command(filepath.Join(t.TempDir(), "no-such-program")))
		t.Error("StartLogged returned after a failed start")
	}()
	<-ended
	if !ft.failed || len(ft.logs) != 1 || !strings.HasPrefix(ft.logs[0], "start missing: ") {
		t.Errorf("failed %v, logged %q", ft.failed, ft.logs)
	}
	if len(ft.cleanups) != 0 {
		t.Errorf("%d cleanups registered for a process that did not start", len(ft.cleanups))
	}
}
