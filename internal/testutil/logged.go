package testutil

import (
	"os/exec"
	"syscall"
	"testing"
)

// StartLogged starts cmd, a process that runs beside the test (a daemon
// under test, say), with its stdout and stderr both in out, which the
// test may poll. A failed start fails the test.
//
// Unless cmd.SysProcAttr already names a Pdeathsig, StartLogged sets
// SIGKILL, so the process dies with the test binary even when no cleanup
// runs (the panic of -timeout); other SysProcAttr fields (Cloneflags,
// say) are the caller's.
//
// A goroutine waits for the process: done is closed once cmd.Wait has
// returned, and cmd.ProcessState then says how it exited. Wait also
// waits for the output to be copied, so a child of the process that
// keeps its output open (vmbackup's thaw guard) holds done until it
// exits too.
//
// At the end of the test the process is killed (SIGKILL; nothing if it
// has exited) and reaped, and if the test has failed by then its output
// is logged as "NAME output:". A t.Cleanup that the caller registers
// before StartLogged runs after the kill, one registered after it runs
// before.
func StartLogged(t testing.TB, name string, cmd *exec.Cmd) (out *SyncBuffer, done <-chan struct{}) {
	t.Helper()
	out = &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		t.Helper()         // the log names the line that called StartLogged
		cmd.Process.Kill() // an error once it has been reaped: nothing to do
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return out, exited
}
