// Package power owns the guest side of vSphere's power operations: the
// TCLO commands OS_Halt, OS_Reboot, OS_PowerOn, OS_Resume and OS_Suspend,
// the [powerops] scripts run for each transition, the
// tools.os.statechange.status report, the second-try rule, and shutting
// the guest down.
//
// The shutdown itself goes through an injected Runner: SystemRunner asks
// logind over D-Bus and falls back to systemctl; RecordRunner only writes
// the action to a file, which is what every test and every simulated run
// uses.
//
// A script (configured or default, through any symlink) is run only if
// nobody but root could have changed it: see toolsconf.Trusted.
package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// State is a GuestOsState id, as sent in tools.os.statechange.status.
type State int

// State ids (lib/include/vmware/guestrpc/powerops.h).
const (
	Halt    State = 1
	Reboot  State = 2
	PowerOn State = 3
	Resume  State = 4
	Suspend State = 5
)

// transition describes one TCLO power command.
type transition struct {
	cmd       string // TCLO command
	state     State
	confKey   string // [powerops] key
	defScript string // default script, relative to the conf dir
	option    string // toolScripts.* option enabling the script
}

var transitions = []transition{
	{"OS_Halt", Halt, "poweroff-script", "poweroff-vm-default", "toolScripts.beforePowerOff"},
	{"OS_Reboot", Reboot, "poweroff-script", "poweroff-vm-default", "toolScripts.beforePowerOff"},
	{"OS_PowerOn", PowerOn, "poweron-script", "poweron-vm-default", "toolScripts.afterPowerOn"},
	{"OS_Resume", Resume, "resume-script", "resume-vm-default", "toolScripts.afterResume"},
	{"OS_Suspend", Suspend, "suspend-script", "suspend-vm-default", "toolScripts.beforeSuspend"},
}

// Action is a shutdown the Runner performs.
type Action string

// Actions.
const (
	ActionPowerOff Action = "poweroff"
	ActionReboot   Action = "reboot"
)

// Runner shuts the guest down. Shutdown returns once the shutdown has been
// initiated (the system then stops services, this daemon included), or an
// error when it could not be.
type Runner interface {
	Shutdown(ctx context.Context, a Action) error
}

// Sender sends one RPCI request; *rpc.Client is one.
type Sender interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
}

// Scripts reads the [powerops] configuration: the value of key and
// whether it is set at all (tools.conf is read afresh on every power
// operation, so edits apply at once).
type Scripts func(key string) (value string, set bool)

// Reply texts, as vmtoolsd words them.
const (
	ErrInProgress    = rpc.Failure("State change already in progress")
	ErrStartScript   = rpc.Failure("Error starting script")
	statusRPCIFormat = "tools.os.statechange.status %d %d\x00"
)

// Ops handles the power TCLO commands.
type Ops struct {
	// RPCI sends the status and log RPCIs.
	RPCI Sender
	// Runner performs halt and reboot.
	Runner Runner
	// ConfDir is where relative script paths and the default scripts
	// live; "" means /etc/vmware-tools.
	ConfDir string
	// Scripts reads [powerops]; nil means every key unset (defaults).
	Scripts Scripts
	// Logger receives what happens; nil discards it.
	Logger *slog.Logger

	mu          sync.Mutex
	inProgress  bool
	lastFailed  State          // the state change that failed last, 0 if none
	disabled    map[State]bool // scripts disabled by toolScripts.* = 0
	jobs        chan job
	runningCtx  context.Context
	runningDone chan struct{}
}

type job struct {
	t      transition
	script string
}

// Register adds the power commands to mux.
func (o *Ops) Register(mux *rpc.Mux) {
	for _, t := range transitions {
		mux.HandleFunc(t.cmd, func(ctx context.Context, args []byte) ([]byte, error) {
			return nil, o.handle(ctx, t)
		})
	}
}

// Capabilities are the RPCIs power operations need registered before the
// VMX offers Shut Down Guest / Restart Guest: no-value capabilities, sent
// with their trailing space and without a NUL, as vmtoolsd sends them.
func (o *Ops) Capabilities() [][]byte {
	return [][]byte{
		[]byte("tools.capability.statechange "),
		[]byte("tools.capability.softpowerop_retry "),
	}
}

// SetOption handles toolScripts.*: "1" enables and "0" disables a script.
// It reports whether the option was one of them and the value valid.
func (o *Ops) SetOption(ctx context.Context, name, value string) bool {
	var states []State
	for _, t := range transitions {
		if t.option == name {
			states = append(states, t.state)
		}
	}
	if len(states) == 0 || (value != "0" && value != "1") {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.disabled == nil {
		o.disabled = map[State]bool{}
	}
	for _, s := range states {
		o.disabled[s] = value == "0"
	}
	return true
}

// Run runs the scripts that power commands start, one at a time, until ctx
// ends; then it waits for a running script to be killed and returns.
func (o *Ops) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.jobs == nil {
		o.jobs = make(chan job, 1)
	}
	jobs := o.jobs
	o.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-jobs:
			code, err := o.runScript(ctx, j.script)
			if ctx.Err() != nil {
				return nil
			}
			ok := err == nil && code == 0
			switch {
			case err != nil:
				o.vmxLog(ctx, fmt.Sprintf("Script %s: %v", filepath.Base(j.script), err))
			default:
				o.vmxLog(ctx, fmt.Sprintf("Script exit code: %d, success = %d", code, b2i(ok)))
			}
			o.done(ctx, j.t, ok)
		}
	}
}

func (o *Ops) handle(ctx context.Context, t transition) error {
	o.mu.Lock()
	if o.inProgress {
		o.mu.Unlock()
		return ErrInProgress
	}
	script := o.script(t)
	if script == "" {
		o.inProgress = true
		o.mu.Unlock()
		o.logger().Info("power operation without script", "command", t.cmd)
		o.done(ctx, t, true)
		return nil
	}
	if o.jobs == nil {
		o.jobs = make(chan job, 1)
	}
	if _, err := os.Stat(script); err != nil {
		o.inProgress = true
		o.mu.Unlock()
		o.logger().Error("power script cannot be started", "command", t.cmd, "script", script, "err", err)
		o.done(ctx, t, false)
		return ErrStartScript
	}
	// Scripts run as root: one that anyone else could change (the file,
	// a symlink to it, its directory) is never run.
	if err := toolsconf.Trusted(script); err != nil {
		o.inProgress = true
		o.mu.Unlock()
		o.logger().Error("power script refused: "+err.Error(), "command", t.cmd, "script", script)
		o.vmxLog(ctx, fmt.Sprintf("Script %s refused: not safe to run as root", filepath.Base(script)))
		o.done(ctx, t, false)
		return ErrStartScript
	}
	o.inProgress = true
	o.mu.Unlock()
	o.vmxLog(ctx, fmt.Sprintf("Executing script for state change '%s'.", t.cmd))
	o.logger().Info("running power script", "command", t.cmd, "script", script)
	select {
	case o.jobs <- job{t, script}:
		return nil
	default: // cannot happen: inProgress admits one job at a time
		o.done(ctx, t, false)
		return ErrStartScript
	}
}

// script resolves the script for t, or "" for none: disabled by
// toolScripts, configured empty, or the default script not installed
// (govmtools ships no default scripts; a missing default is no script,
// while a missing configured script is an error).
// Preconditions: o.mu is held.
func (o *Ops) script(t transition) string {
	if o.disabled[t.state] {
		return ""
	}
	v, set := "", false
	if o.Scripts != nil {
		v, set = o.Scripts(t.confKey)
	}
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		v = v[1 : len(v)-1]
	}
	if set && v == "" {
		return ""
	}
	isDefault := !set
	if isDefault {
		v = t.defScript
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(o.confDir(), v)
	}
	if isDefault {
		if _, err := os.Stat(v); err != nil {
			return ""
		}
	}
	return v
}

func (o *Ops) confDir() string {
	if o.ConfDir == "" {
		return "/etc/vmware-tools"
	}
	return o.ConfDir
}

// runScript runs the script with no arguments and output discarded, as
// vmtoolsd does, and returns its exit code.
func (o *Ops) runScript(ctx context.Context, path string) (int, error) {
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = o.confDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Errorf("killed by signal %v", ws.Signal())
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

// done finishes a state change: the second-try rule, the status RPCI, and
// for halt and reboot the shutdown. The shutdown is initiated before the
// status is sent so that the status says whether it really was; the
// system stops this daemon only later, after the status has gone out.
func (o *Ops) done(ctx context.Context, t transition, ok bool) {
	o.mu.Lock()
	if !ok && o.lastFailed == t.state {
		// Second try: a failing script must not make the operation
		// impossible, so the same request twice in a row goes through.
		o.logger().Warn("power script failed again; proceeding anyway", "command", t.cmd)
		ok = true
	}
	if ok {
		o.lastFailed = 0
	} else {
		o.lastFailed = t.state
	}
	o.mu.Unlock()

	if ok && (t.state == Halt || t.state == Reboot) {
		a, verb := ActionPowerOff, "halt"
		if t.state == Reboot {
			a, verb = ActionReboot, "reboot"
		}
		o.vmxLog(ctx, "Initiating "+verb+".")
		if err := o.Runner.Shutdown(ctx, a); err != nil {
			o.logger().Error("shutdown failed", "action", a, "err", err)
			o.vmxLog(ctx, fmt.Sprintf("Unable to %s: %v", verb, err))
			ok = false
		} else {
			o.logger().Info("shutdown initiated", "action", a)
		}
	}
	if _, err := o.RPCI.Call(ctx, fmt.Appendf(nil, statusRPCIFormat, b2i(ok), t.state)); err != nil {
		o.logger().Error("cannot report state change status", "command", t.cmd, "err", err)
	}
	o.mu.Lock()
	o.inProgress = false
	o.mu.Unlock()
}

func (o *Ops) vmxLog(ctx context.Context, text string) {
	if _, err := o.RPCI.Call(ctx, []byte("log "+text+"\x00")); err != nil {
		o.logger().Debug("log rpci failed", "err", err)
	}
}

func (o *Ops) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
