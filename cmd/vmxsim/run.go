package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmxsim/backdoor"
	"github.com/govmtools/govmtools/vmxsim/sim"
	"github.com/govmtools/govmtools/vmxsim/trap"
)

// runFlags are `vmxsim run`'s flags and command.
type runFlags struct {
	sim         *simFlags
	lb, keep    bool
	noVSock     bool
	clockOffset time.Duration
	freezeAllow pathList
	cmd         []string
}

func parseRun(args []string, stdout io.Writer) (*runFlags, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	rf := &runFlags{sim: addSimFlags(fs, "warn")}
	fs.BoolVar(&rf.lb, "lb", false, "withhold the high-bandwidth status bit, so guests use the low-bandwidth path")
	fs.BoolVar(&rf.noVSock, "no-vsock", false, "leave socket(AF_VSOCK) failing with EAFNOSUPPORT (backdoor only), instead of turning the program's vsock sockets into connections to the simulator")
	fs.BoolVar(&rf.keep, "keep-dead-channels", false, "keep the backdoor channels of a process that exits, as the VMX does (it cannot tell guest processes apart); by default they are closed")
	fs.Var(&rf.freezeAllow, "freeze-allow", "a mount point (a loop file system the caller made) where the program's FIFREEZE/FITHAW really run (repeatable); elsewhere they are recorded no-ops")
	fs.DurationVar(&rf.clockOffset, "clock-offset", 0, "run the host clock of the backdoor time commands this far ahead of the real time (negative: behind); change it later with ctl backdoor clock")
	if err := parseFlags(fs, args, stdout, "vmxsim run [flags] -- CMD ARGS..."); err != nil {
		return nil, err
	}
	if rf.cmd = fs.Args(); len(rf.cmd) == 0 {
		return nil, usageError{cmd: "run", msg: "run needs a command: vmxsim run [flags] -- CMD ARGS..."}
	}
	return rf, nil
}

// backdoor returns the backdoor the flags ask for. The trap's owners are
// process ids: kill faults SIGKILL them.
func (rf *runFlags) backdoor() *backdoor.Options {
	return &backdoor.Options{
		NoHB:             rf.lb,
		KeepDeadChannels: rf.keep,
		Kill: func(pid int) {
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		},
	}
}

// runCmd is `vmxsim run`: it serves the simulator on DIR (a temporary
// directory unless --dir or $VMXSIM_DIR says otherwise), runs CMD under
// the backdoor trap against the same core, and returns CMD's exit code
// (128+n when signal n killed it).
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	rf, err := parseRun(args, stdout)
	if err != nil {
		return 0, err
	}
	logger, err := rf.sim.logger(stderr, "run")
	if err != nil {
		return 0, err
	}
	if !trap.Supported {
		_, err := trap.Run(ctx, trap.Config{})
		return 0, err
	}
	path, err := exec.LookPath(rf.cmd[0])
	if err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("cannot find the vmxsim binary to start the trap: %w", err)
	}
	if rf.sim.dir == "" {
		d, err := os.MkdirTemp("", "vmxsim-run-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(d)
		rf.sim.dir = d
	}
	// The simulator outlives a signal to vmxsim: it serves until the
	// traced program has gone.
	s, stop, err := rf.sim.startSim(context.Background(), logger, func(o *sim.Options) { o.Backdoor = rf.backdoor() })
	if err != nil {
		return 0, err
	}
	defer stop()
	if rf.clockOffset != 0 {
		s.Backdoor.SetClockOffset(rf.clockOffset)
	}
	logger.Info("running under the trap", "dir", rf.sim.dir, "cmd", rf.cmd, "lb", rf.lb)
	stats := &trap.Stats{}
	s.Core.ReportTrap(stats.Snapshot)
	cfg := trap.Config{Backdoor: s.Backdoor, Path: path, Args: rf.cmd[1:], Env: trapEnv(rf.sim.dir), Helper: self, Logger: logger, FreezeAllow: rf.freezeAllow, Stats: stats}
	if !rf.noVSock {
		cfg.VSock = &trap.VSockHost{Endpoint: s.Server.VSockEndpoint}
	}
	return trap.Run(ctx, cfg)
}

// trapEnv is the traced program's environment: GOVMTOOLS_RPC is dropped
// (under the trap our tools take their default, auto, which finds the
// backdoor; a --rpc flag still wins) and VMXSIM_DIR names the simulator.
func trapEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOVMTOOLS_RPC=") && !strings.HasPrefix(kv, "VMXSIM_DIR=") {
			env = append(env, kv)
		}
	}
	return append(env, "VMXSIM_DIR="+dir)
}
