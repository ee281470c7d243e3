// Package daemon assembles vmtoolsd, the tools service vSphere talks to:
// the transport, logging to stderr (the journal under systemd) and to
// vmware.log, tools.conf and its reloads, the systemd notifier and
// watchdog, and the service (vmtoolsd) with its plugins: power operations
// (vmtoolsd/power), time sync (vmtoolsd/timesync) and guest info
// (vmtoolsd/infosync). cmd/vmtoolsd parses the flags into a Config and
// calls Run.
package daemon

import (
	"context"
	"fmt"
	"github.com/govmtools/govmtools/rpc/backdoor"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/govmtools/govmtools/internal/version"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/govmtools/govmtools/systemd"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/infosync"
	"github.com/govmtools/govmtools/vmtoolsd/power"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vmxlog"
)

// Config configures the daemon.
type Config struct {
	// Mode is how to reach the VMX.
	Mode transport.Mode
	// Simulated is true under vmxsim (GOVMTOOLS_SIMULATED=1): the power
	// runner only records and the clock is never set (steps and slews
	// are logged).
	Simulated bool
	// ConfigPath is tools.conf; ConfDir holds the default power scripts.
	ConfigPath, ConfDir string
	// ConfigRequired says ConfigPath was named (vmtoolsd -c): a missing
	// file is then worth a warning.
	ConfigRequired bool
	// PowerRunner is how halt and reboot are done: "system" or
	// "record:FILE"; "" means system, or record: when Simulated.
	PowerRunner string
	// LogLevel, if set, overrides tools.conf [logging] vmsvc.level.
	LogLevel *slog.Level
	// VMXLog also sends warnings and errors to vmware.log.
	VMXLog bool
	// Getenv reads NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and
	// JOURNAL_STREAM; nil means os.Getenv.
	Getenv func(string) string
	// Stderr receives the logs; nil means os.Stderr.
	Stderr io.Writer
	// IsVMware says whether this machine is a VMware VM, asked only to
	// choose the default power runner; nil means CPUID detection.
	IsVMware func() bool
}

// Daemon is a configured vmtoolsd.
type Daemon struct {
	cfg        Config
	runnerSpec string
	runnerWhy  string // why runnerSpec, said at start
}

// New checks cfg; its errors are usage errors.
func New(cfg Config) (*Daemon, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	spec, why := cfg.PowerRunner, "--power-runner"
	if spec == "" {
		isVMware := cfg.IsVMware
		if isVMware == nil {
			isVMware = func() bool { return backdoor.Detect() == nil }
		}
		spec, why = power.DefaultRunner(string(cfg.Mode.Kind), cfg.Simulated, isVMware)
	}
	if cfg.Simulated && !strings.HasPrefix(spec, "record:") {
		return nil, fmt.Errorf("refusing --power-runner %s under GOVMTOOLS_SIMULATED=1: this is not a VM", spec)
	}
	if _, err := power.ParseRunner(spec, nil); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, runnerSpec: spec, runnerWhy: why}, nil
}

// parts are what Run starts, built by assemble.
type parts struct {
	logger   *slog.Logger
	conf     *toolsconf.Watcher
	sink     *vmxlog.Sink // nil without VMXLog
	notifier *systemd.Notifier
	watchdog *systemd.Watchdog
	gi       *infosync.Plugin
	svc      *vmtoolsd.Service
	closers  []func()
}

// Run serves until ctx ends, and returns after every goroutine it started
// has ended. SIGHUP reloads tools.conf.
func (d *Daemon) Run(ctx context.Context) error {
	p := d.assemble()
	defer func() {
		slices.Reverse(p.closers)
		for _, c := range p.closers {
			c()
		}
	}()
	p.logger.Info("starting", "version", version.String(), "rpc", d.cfg.Mode.String(), "config", d.cfg.ConfigPath, "power-runner", d.runnerSpec, "simulated", d.cfg.Simulated)
	if d.runnerSpec == "system" {
		p.logger.Info("power actions are performed (power runner system)", "because", d.runnerWhy)
	} else {
		p.logger.Info("power actions are recorded, not performed (power runner "+d.runnerSpec+")", "because", d.runnerWhy)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	wg.Go(func() { p.conf.Run(ctx) })
	wg.Go(func() { p.watchdog.Run(ctx) })
	if p.sink != nil {
		wg.Go(func() { p.sink.Run(ctx) })
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				p.logger.Info("SIGHUP: reloading tools.conf")
				p.conf.Load()
				p.gi.Update()
			}
		}
	})
	err := p.svc.Run(ctx)
	p.notifier.Stopping()
	cancel()
	wg.Wait()
	if err != nil {
		p.logger.Error("stopped", "err", err)
		return err
	}
	p.logger.Info("stopped")
	return nil
}
