package testutil

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// SimProcess is a running vmxsim binary (`vmxsim serve` or `vmxsim run`)
// started by LaunchSim. Tests, the benchmark and the workload helpers all
// start the simulator binary through LaunchSim, so readiness is decided
// in one place.
type SimProcess struct {
	Dir string // the simulator directory
	Cmd *exec.Cmd

	done chan struct{}
	err  error // what Cmd.Wait returned; set before done closes
}

// LaunchSim starts cmd, a `vmxsim serve` or `vmxsim run` command whose
// --dir is dir, and returns once dir/ctl.sock accepts a connection: the
// simulator opens it last, after tclo.sock and rpci.sock, and only once
// the simulator is assembled. If ready is not nil, LaunchSim also waits
// until it reports true (a program under the trap has started, say). If
// the process exits first or timeout passes, LaunchSim returns an error,
// after killing the process and waiting for it.
//
// The caller owns cmd's I/O; LaunchSim waits for the process in the
// background, so Done and Err report its exit.
func LaunchSim(cmd *exec.Cmd, dir string, timeout time.Duration, ready func() bool) (*SimProcess, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &SimProcess{Dir: dir, Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	sock := filepath.Join(dir, "ctl.sock")
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			if ready == nil || ready() {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before serving %s: %v", filepath.Base(cmd.Path), sock, p.err)
		case <-deadline.C:
			cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("%s: not ready after %v (no %s)", filepath.Base(cmd.Path), timeout, sock)
		case <-tick.C:
		}
	}
}

// Done is closed when the process has exited.
func (p *SimProcess) Done() <-chan struct{} { return p.done }

// Err returns what waiting for the process returned; call it after Done.
func (p *SimProcess) Err() error { return p.err }

// Exited reports whether the process has exited.
func (p *SimProcess) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ErrStopTimeout is returned by Stop when the process had to be killed.
var ErrStopTimeout = errors.New("vmxsim did not exit in time and was killed")

// Stop sends sig (unless 0) and waits up to grace for the process to exit;
// then it kills it. It returns the process's exit error, or
// ErrStopTimeout.
func (p *SimProcess) Stop(sig syscall.Signal, grace time.Duration) error {
	if sig != 0 && !p.Exited() {
		p.Cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.done
		return ErrStopTimeout
	}
}

// SocketsLeft returns the simulator's socket files still in Dir (a
// simulator that stopped cleanly removes them).
func (p *SimProcess) SocketsLeft() []string {
	var left []string
	for _, name := range []string{"tclo.sock", "rpci.sock", "ctl.sock"} {
		if _, err := os.Stat(filepath.Join(p.Dir, name)); err == nil {
			left = append(left, name)
		}
	}
	return left
}
