package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// RecordRunner performs no shutdown: it appends the action, one per line
// ("poweroff" or "reboot"), to Path, and logs it. It is the runner of
// every test and of every run under vmxsim (GOVMTOOLS_SIMULATED=1).
type RecordRunner struct {
	// Path is the file appended to; "" only logs.
	Path   string
	Logger *slog.Logger

	mu sync.Mutex
}

// Shutdown records a.
func (r *RecordRunner) Shutdown(ctx context.Context, a Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Logger != nil {
		r.Logger.Warn("power action recorded, not performed", "action", a, "file", r.Path)
	}
	if r.Path == "" {
		return nil
	}
	f, err := os.OpenFile(r.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("power: record %s: %w", a, err)
	}
	_, err = f.WriteString(string(a) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("power: record %s: %w", a, err)
	}
	return nil
}

// SystemRunner shuts the machine down for real: it asks logind over D-Bus
// (org.freedesktop.login1.Manager.PowerOff/Reboot), and when that fails
// (no D-Bus, no logind, or a blocking inhibitor) it runs `systemctl
// poweroff -i` / `systemctl reboot -i`, which ignores inhibitors, as
// open-vm-tools 13.1 learned to.
//
// go-systemd's login1 package drops the D-Bus error of PowerOff and
// Reboot, which is exactly what the fallback decision needs, so the call
// is made with godbus (the library go-systemd itself uses).
type SystemRunner struct {
	Logger *slog.Logger
	// Logind, if set, replaces the D-Bus call (for tests).
	Logind func(ctx context.Context, method string) error
	// Exec, if set, replaces running a command (for tests).
	Exec func(ctx context.Context, name string, args ...string) error
}

// Shutdown initiates a.
func (r *SystemRunner) Shutdown(ctx context.Context, a Action) error {
	method := "PowerOff"
	if a == ActionReboot {
		method = "Reboot"
	}
	logind := r.Logind
	if logind == nil {
		logind = callLogind
	}
	err := logind(ctx, method)
	if err == nil {
		return nil
	}
	if r.Logger != nil {
		r.Logger.Warn("logind refused the shutdown; falling back to systemctl -i", "method", method, "err", err)
	}
	run := r.Exec
	if run == nil {
		run = execCommand
	}
	var errs []error
	errs = append(errs, fmt.Errorf("logind %s: %w", method, err))
	for _, systemctl := range []string{"/usr/bin/systemctl", "/bin/systemctl", "/sbin/systemctl"} {
		if r.Exec == nil {
			if _, err := os.Stat(systemctl); err != nil {
				continue
			}
		}
		err := run(ctx, systemctl, string(a), "-i")
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s %s -i: %w", systemctl, a, err))
		break
	}
	if len(errs) == 1 {
		errs = append(errs, errors.New("systemctl not found"))
	}
	return fmt.Errorf("power: %s: %w", a, errors.Join(errs...))
}

func callLogind(ctx context.Context, method string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return err
	}
	defer conn.Close()
	obj := conn.Object("org.freedesktop.login1", "/org/freedesktop/login1")
	return obj.CallWithContext(ctx, "org.freedesktop.login1.Manager."+method, 0, false).Err
}

func execCommand(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ParseRunner parses a --power-runner value: "system" (logind, then
// systemctl -i) or "record:FILE" (write the action to FILE; "record:"
// only logs it).
func ParseRunner(s string, logger *slog.Logger) (Runner, error) {
	switch {
	case s == "system":
		return &SystemRunner{Logger: logger}, nil
	case strings.HasPrefix(s, "record:"):
		return &RecordRunner{Path: strings.TrimPrefix(s, "record:"), Logger: logger}, nil
	}
	return nil, fmt.Errorf("power: unknown runner %q (want system or record:FILE)", s)
}

// DefaultRunner chooses the --power-runner when none is given, and says
// why. Power actions are real ("system") only on a VMware VM reached over
// a real transport: with a unix:DIR transport (vmxsim serve), under vmxsim
// (simulated) or on a machine that is not a VMware VM, they are recorded
// and logged ("record:"), never performed, so that a vSphere client of a
// local simulator cannot shut down the machine it runs on. Only an
// explicit --power-runner system performs them there (and not under
// simulated, which ParseRunner's caller refuses).
//
// transport is the --rpc kind ("auto", "vsock", "backdoor", "unix");
// isVMware is asked only when the answer matters.
func DefaultRunner(transport string, simulated bool, isVMware func() bool) (spec, reason string) {
	switch {
	case simulated:
		return "record:", "running under vmxsim (GOVMTOOLS_SIMULATED=1)"
	case transport == "unix":
		return "record:", "the transport is unix: (a simulator, not a VMX)"
	case isVMware == nil || !isVMware():
		return "record:", "this machine is not a VMware VM"
	}
	return "system", "a VMware VM"
}
