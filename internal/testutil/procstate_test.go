package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProcState: a process that is still running is not taken as ended,
// and its report names its state and threads, once each; after it is
// reaped it has ended.
func TestProcState(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if processEnded(pid) {
		t.Fatal("a running process taken as ended")
	}
	st := ProcState(pid)
	if strings.Count(st, "State:") != 1 || !strings.Contains(st, "Name:\tsleep") || !strings.Contains(st, "thread ") || !strings.Contains(st, "wchan") {
		t.Errorf("state report:\n%s", st)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !processEnded(pid) {
		t.Error("a reaped process is not taken as ended")
	}
}
