package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/trap"
)

// runCmd is `vmxsim run`: it serves the simulator on DIR (a temporary
// directory unless --dir or $VMXSIM_DIR says otherwise), runs CMD under
// the backdoor trap against the same core, and returns CMD's exit code
// (128+n when signal n killed it).
func runCmd(ctx context.Context, args []string, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addSimFlags(fs, "warn")
	lb := fs.Bool("lb", false, "withhold the high-bandwidth status bit, so guests use the low-bandwidth path")
	keep := fs.Bool("keep-dead-channels", false, "keep the backdoor channels of a process that exits, as the VMX does (it cannot tell guest processes apart); by default they are closed")
	var freezeAllow stringList
	fs.Var(&freezeAllow, "freeze-allow", "a mount point (a loop file system the caller made) where the program's FIFREEZE/FITHAW really run (repeatable); elsewhere they are recorded no-ops")
	clockOffset := fs.Duration("clock-offset", 0, "run the host clock of the backdoor time commands this far ahead of the real time (negative: behind); change it later with ctl backdoor clock")
	if err := fs.Parse(args); err != nil {
		return 0, usageError(err.Error())
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		return 0, usageError("run needs a command: vmxsim run [flags] -- CMD ARGS...")
	}
	if !trap.Supported {
		_, err := trap.Run(ctx, trap.Config{})
		return 0, err
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("cannot find the vmxsim binary to start the trap: %w", err)
	}
	if sf.dir == "" {
		d, err := os.MkdirTemp("", "vmxsim-run-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(d)
		sf.dir = d
	}
	s, err := sf.setup(stderr)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	bd := vmxsim.NewBackdoor(s.core, vmxsim.BackdoorOptions{
		NoHB:             *lb,
		KeepDeadChannels: *keep,
		// The trap's owners are process ids: kill faults SIGKILL them.
		Kill: func(pid int) {
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		},
	})
	if *clockOffset != 0 {
		bd.SetClockOffset(*clockOffset)
	}
	s.srv.HandleBackdoor(bd)

	srvCtx, stopSrv := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var srvErr error
	srvDone := make(chan struct{})
	wg.Go(func() {
		srvErr = s.srv.Serve(srvCtx, func() { close(ready) })
		close(srvDone)
	})
	wg.Go(func() { bd.Run(srvCtx) })
	defer func() {
		stopSrv()
		wg.Wait()
	}()
	if err := s.startVSphere(srvCtx, sf, &wg); err != nil {
		return 0, err
	}
	select {
	case <-ready:
	case <-srvDone:
		return 0, errors.Join(errors.New("simulator did not start"), srvErr)
	}
	s.logger.Info("running under the trap", "dir", sf.dir, "cmd", cmd, "lb", *lb)
	// GOVMTOOLS_RPC is dropped: under the trap our tools take their
	// default (auto), which finds the backdoor; a --rpc flag still wins.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOVMTOOLS_RPC=") && !strings.HasPrefix(kv, "VMXSIM_DIR=") {
			env = append(env, kv)
		}
	}
	env = append(env, "VMXSIM_DIR="+sf.dir)
	code, err := trap.Run(ctx, trap.Config{
		Backdoor: bd,
		Path:     path,
		Args:     cmd[1:],
		Env:      env,
		Helper:   self,
		Logger:   s.logger,

		FreezeAllow: freezeAllow,
	})
	return code, err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
