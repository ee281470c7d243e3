package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/pollwait"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/govmtools/govmtools/systemd"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/infosync"
	"github.com/govmtools/govmtools/vmtoolsd/power"
	"github.com/govmtools/govmtools/vmtoolsd/timesync"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vix"
	"github.com/govmtools/govmtools/vmtoolsd/vmbackup"
	"github.com/govmtools/govmtools/vmtoolsd/vmxlog"
)

// assemble builds everything Run starts. What it opens is released by
// p.closers, in reverse order.
func (d *Daemon) assemble() *parts {
	p := &parts{}
	// Logging: stderr (the journal under systemd, with priority prefixes
	// when stderr is the journal stream), plus vmware.log for warnings.
	level := &slog.LevelVar{}
	base := newStderrHandler(d.cfg.Stderr, level, d.cfg.Getenv("JOURNAL_STREAM") != "")
	p.logger = slog.New(base)
	tr := transport.New(transport.Config{Mode: d.cfg.Mode, Simulated: d.cfg.Simulated, Logger: p.logger})
	if d.cfg.VMXLog {
		// One persistent channel for logging, apart from the service's.
		logClient := &rpc.Client{Dial: tr.DialRPCI, NoRetry: true}
		p.closers = append(p.closers, func() { logClient.Close() })
		p.sink = vmxlog.NewSink(logClient, vmxlog.Options{Prefix: "vmtoolsd: ", Logger: slog.New(base)})
		p.logger = slog.New(vmxlog.NewHandler(base, p.sink, slog.LevelWarn))
	}
	d.loadConf(p, level)
	d.systemd(p)

	client := &rpc.Client{Dial: tr.DialRPCI, Logger: p.logger}
	p.closers = append(p.closers, func() { client.Close() })
	p.gi = infosync.New(client, p.conf.Current, fmt.Sprintf("build-%d", vmtoolsd.DefaultVersion().Build), p.logger.With("component", "guestinfo"))
	p.closers = append(p.closers, func() { p.gi.Close() })
	applyLevel := p.conf.OnChange
	p.conf.OnChange = func(f *toolsconf.File) {
		applyLevel(f)
		p.gi.Update()
	}
	// The backdoor TCLO channel sleeps between idle polls on a timerfd,
	// which wakes only the thread that polls (rpc/pollwait).
	var pollSleep func(context.Context, time.Duration) error
	if w, err := pollwait.New(); err == nil {
		p.closers = append(p.closers, func() { w.Close() })
		pollSleep = w.Sleep
	} else {
		p.logger.Debug("idle polls use Go timers", "err", err)
	}
	heartbeatAlarm := func() (rpc.Alarm, error) {
		w, err := pollwait.New()
		if err != nil {
			p.logger.Debug("the heartbeat uses a Go timer", "err", err)
			return pollwait.NewTimerAlarm(), nil
		}
		return w, nil
	}
	p.svc = vmtoolsd.New(vmtoolsd.Config{
		DialTCLO:    tr.DialTCLO,
		RPCI:        client,
		Plugins:     []vmtoolsd.Plugin{d.powerOps(p, client), d.timeSync(p, tr), p.gi, newVMBackup(p.conf, client, d.cfg.ConfDir, d.cfg.Simulated, d.cfg.Getenv, p.logger.With("component", "vmbackup")), newVIX(p.conf, p.logger.With("component", "vix"))},
		PrimaryIP:   p.gi,
		HideVersion: func() bool { return p.conf.Current().Bool(vmtoolsd.Group, "hide-tools-version", false) },
		ConfDir:     d.cfg.ConfDir,
		Uptime:      (&guestinfo.System{}).Uptime,
		Logger:      p.logger,
		OnReady:     func() { p.notifier.Ready("Tools running") },
		OnActive:    p.watchdog.Alive,
		OnStatus:    func(s string) { p.notifier.Status(s) },
		PollSleep:   pollSleep,
		// The heartbeat over vsock and unix:DIR waits on a timerfd too,
		// which each reply moves back with a raw system call: no Go timer
		// is pending while the VMX pings, so sysmon stays asleep.
		HeartbeatAlarm: heartbeatAlarm,
	})
	return p
}

// loadConf reads tools.conf, whose [logging] level applies unless the
// command line set one.
func (d *Daemon) loadConf(p *parts, level *slog.LevelVar) {
	schema := Schema()
	p.conf = &toolsconf.Watcher{Path: d.cfg.ConfigPath, Required: d.cfg.ConfigRequired, Schema: schema, Logger: p.logger.With("component", "toolsconf")}
	p.conf.OnChange = func(f *toolsconf.File) {
		if d.cfg.LogLevel == nil {
			level.Set(ConfLevel(f))
		}
	}
	if d.cfg.LogLevel != nil {
		level.Set(*d.cfg.LogLevel)
	}
	p.conf.OnChange(p.conf.Load())
}

// systemd opens the notify socket and sets up the watchdog.
func (d *Daemon) systemd(p *parts) {
	notifier, err := systemd.Open(d.cfg.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		p.logger.Warn("cannot reach systemd's notify socket", "err", err)
	}
	p.closers = append(p.closers, func() { notifier.Close() })
	wdTimeout, err := systemd.WatchdogInterval(d.cfg.Getenv("WATCHDOG_USEC"), d.cfg.Getenv("WATCHDOG_PID"), os.Getpid())
	if err != nil {
		p.logger.Warn("ignoring the watchdog settings", "err", err)
	}
	p.notifier = notifier
	p.watchdog = &systemd.Watchdog{Notifier: notifier, Timeout: wdTimeout}
}

func (d *Daemon) powerOps(p *parts, client *rpc.Client) *power.Ops {
	runner, _ := power.ParseRunner(d.runnerSpec, p.logger.With("component", "power")) // checked by New
	return &power.Ops{
		RPCI:    client,
		Runner:  runner,
		ConfDir: d.cfg.ConfDir,
		Scripts: power.ConfScripts(p.conf.Current),
		Logger:  p.logger.With("component", "power"),
	}
}

func (d *Daemon) timeSync(p *parts, tr *transport.Transport) *timesync.Syncer {
	var clock timesync.Clock = timesync.SystemClock{}
	if d.cfg.Simulated {
		clock = timesync.LogClock{Logger: p.logger.With("component", "timesync")}
	}
	s := &timesync.Syncer{
		Clock:    clock,
		Daemon:   timesync.ProcDaemon("/proc"),
		Settings: func() timesync.Settings { return timesync.ConfSettings(p.conf.Current()) },
		Logger:   p.logger.With("component", "timesync"),
	}
	// Host time is read over the backdoor (GETTIMEFULL_WITH_LAG, then
	// GETTIMEFULL, then GETTIME) in auto and backdoor modes, once VMware
	// is detected; vsock and unix:DIR offer none, and Time_Synchronize
	// then answers "Unable to sync time".
	if hc, ok := tr.HostClock(); ok {
		s.Host = hc
	}
	return s
}

// Schema lists every tools.conf key vmtoolsd honours: its plugins', the
// service's [vmtools], and [logging].
func Schema() toolsconf.Schema {
	s := toolsconf.Schema{
		"logging": {"log": toolsconf.Bool, "vmsvc.level": toolsconf.String, "vmsvc.handler": toolsconf.String, "vmtoolsd.level": toolsconf.String, "vmtoolsd.handler": toolsconf.String},
	}
	for _, o := range []toolsconf.Schema{vmtoolsd.Schema(), power.Schema(), timesync.Schema(), infosync.Schema(), vmbackup.Schema(), vix.Schema()} {
		s.Merge(o)
	}
	return s
}

// ConfLevel maps [logging] vmsvc.level (GLib level names; vmtoolsd.level
// if unset) to slog.
func ConfLevel(f *toolsconf.File) slog.Level {
	v := f.String("logging", "vmsvc.level", f.String("logging", "vmtoolsd.level", "message"))
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug
	case "warning":
		return slog.LevelWarn
	case "error", "critical", "none":
		return slog.LevelError
	}
	return slog.LevelInfo // message, info, anything else
}
