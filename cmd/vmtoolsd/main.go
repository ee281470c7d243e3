// Command vmtoolsd is govmtools' VMware tools service: the daemon vSphere
// talks to. It answers the VMX's TCLO commands (reset, ping, Set_Option,
// Capabilities_Register, guest power operations, time sync), reports the
// tools version and capabilities, reports guest info (host name, OS, NICs
// with addresses, routes and DNS, disks, uptime) as the network changes,
// sends its warnings to vmware.log, and runs under systemd with
// readiness, a watchdog and status lines.
//
//	vmtoolsd [--rpc MODE] [-c tools.conf] [--conf-dir DIR] [--power-runner system|record:FILE]
//	vmtoolsd --cmd 'RPCI'    send one RPCI command and print the reply
//	vmtoolsd -v              print the version
//
// Host time for Time_Synchronize and the synctime options comes from the
// backdoor's time commands (in --rpc auto and backdoor). Under vmxsim
// (GOVMTOOLS_SIMULATED=1) the power runner only records and the clock is
// never set: steps and slews are logged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/internal/version"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/systemd"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/guestinfoplugin"
	"github.com/govmtools/govmtools/vmtoolsd/power"
	"github.com/govmtools/govmtools/vmtoolsd/timesync"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vmbackup"
	"github.com/govmtools/govmtools/vmtoolsd/vmxlog"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == vmbackup.GuardCommand {
		os.Exit(vmbackup.GuardMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	// One P: vmtoolsd's work is a sequence of small I/O steps, and with a
	// second P the scheduler wakes an idle thread to spin at every TCLO
	// poll and command. Measured idle (docs/benchmarks.md): 17 -> 8
	// wake-ups/s over unix:DIR, 122 -> 81 under the trap. Blocking system
	// calls (scripts, files) still hand the P over. GOMAXPROCS in the
	// environment overrides this.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// args are the command-line flags.
type args struct {
	rpc         string
	config      string
	confDir     string
	powerRunner string
	logLevel    string
	vmxLog      bool
	cmd         string
	version     bool
}

func parseArgs(argv []string, stderr io.Writer) (*args, error) {
	a := &args{}
	fs := flag.NewFlagSet("vmtoolsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.rpc, "rpc", "", "how to reach the VMX: auto, vsock, backdoor or unix:DIR (default $GOVMTOOLS_RPC, then auto)")
	fs.StringVar(&a.config, "c", "", "tools.conf to read (default CONF-DIR/tools.conf)")
	fs.StringVar(&a.config, "config", "", "same as -c")
	fs.StringVar(&a.confDir, "conf-dir", toolsconf.DefaultDir, "directory of tools.conf and the default power scripts")
	fs.StringVar(&a.powerRunner, "power-runner", "", "how halt and reboot are done: system (logind, then systemctl -i) or record:FILE (append the action to FILE and do nothing); default system, record: under GOVMTOOLS_SIMULATED=1")
	fs.StringVar(&a.logLevel, "log-level", "", "stderr/journal log level: debug, info, warn, error (default tools.conf [logging] vmsvc.level, then info)")
	fs.BoolVar(&a.vmxLog, "vmx-log", true, "also send warnings and errors to vmware.log (rate-limited)")
	fs.StringVar(&a.cmd, "cmd", "", "send one RPCI command, print the reply and exit")
	fs.BoolVar(&a.version, "v", false, "print the version and exit")
	fs.BoolVar(&a.version, "version", false, "same as -v")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vmtoolsd [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(argv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if a.config == "" {
		a.config = strings.TrimSuffix(a.confDir, "/") + "/tools.conf"
	}
	return a, nil
}

func run(ctx context.Context, argv []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a, err := parseArgs(argv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "vmtoolsd: %v\n", err)
		return 2
	}
	if a.version {
		fmt.Fprintf(stdout, "vmtoolsd (govmtools) %s, open-vm-tools %s compatible (TOOLS_VERSION_UINT %d)\n",
			version.Version, vmtoolsd.DefaultVersion, vmtoolsd.DefaultVersion.Uint())
		return 0
	}
	simulated := getenv("GOVMTOOLS_SIMULATED") == "1"

	// Logging: stderr (the journal under systemd, with priority prefixes
	// when stderr is the journal stream), plus vmware.log for warnings.
	level := &slog.LevelVar{}
	base := newStderrHandler(stderr, level, getenv("JOURNAL_STREAM") != "")
	logger := slog.New(base)

	tr, err := cmdutil.Transport(a.rpc, logger)
	if err != nil {
		fmt.Fprintf(stderr, "vmtoolsd: %v\n", err)
		return 2
	}
	if a.cmd != "" {
		return oneCommand(ctx, tr.DialRPCIOneShot, a.cmd, stdout, stderr)
	}

	runnerSpec := a.powerRunner
	if runnerSpec == "" {
		runnerSpec = "system"
		if simulated {
			runnerSpec = "record:"
		}
	}
	if simulated && !strings.HasPrefix(runnerSpec, "record:") {
		fmt.Fprintf(stderr, "vmtoolsd: refusing --power-runner %s under GOVMTOOLS_SIMULATED=1: this is not a VM\n", runnerSpec)
		return 2
	}

	var sink *vmxlog.Sink
	var logClient *rpc.Client
	if a.vmxLog {
		// One persistent channel for logging, apart from the service's.
		logClient = &rpc.Client{Dial: tr.DialRPCI, NoRetry: true}
		defer logClient.Close()
		sink = vmxlog.NewSink(logClient, vmxlog.Options{Prefix: "vmtoolsd: ", Logger: slog.New(base)})
		logger = slog.New(vmxlog.NewHandler(base, sink, slog.LevelWarn))
	}

	runner, err := power.ParseRunner(runnerSpec, logger.With("component", "power"))
	if err != nil {
		fmt.Fprintf(stderr, "vmtoolsd: %v\n", err)
		return 2
	}

	schema := confSchema()
	schema.Merge(guestinfoplugin.Schema())
	schema.Merge(vmbackup.Schema())
	conf := &toolsconf.Watcher{Path: a.config, Schema: schema, Logger: logger.With("component", "toolsconf")}
	applyLogLevel := func(f *toolsconf.File) {
		if a.logLevel != "" {
			return
		}
		level.Set(confLevel(f))
	}
	conf.OnChange = applyLogLevel
	if a.logLevel != "" {
		if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
			fmt.Fprintf(stderr, "vmtoolsd: --log-level: %v\n", err)
			return 2
		}
	}
	applyLogLevel(conf.Load())

	notifier, err := systemd.Open(getenv("NOTIFY_SOCKET"))
	if err != nil {
		logger.Warn("cannot reach systemd's notify socket", "err", err)
	}
	defer notifier.Close()
	wdTimeout, err := systemd.WatchdogInterval(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), os.Getpid())
	if err != nil {
		logger.Warn("ignoring the watchdog settings", "err", err)
	}
	watchdog := &systemd.Watchdog{Notifier: notifier, Timeout: wdTimeout}

	client := &rpc.Client{Dial: tr.DialRPCI, Logger: logger}
	defer client.Close()

	gi, closeGI := newGuestInfo(conf, client, logger.With("component", "guestinfo"))
	defer closeGI()
	conf.OnChange = func(f *toolsconf.File) {
		applyLogLevel(f)
		gi.Update()
	}

	var clock timesync.Clock = timesync.SystemClock{}
	if simulated {
		clock = timesync.LogClock{Logger: logger.With("component", "timesync")}
	}
	ops := &power.Ops{
		RPCI:    client,
		Runner:  runner,
		ConfDir: a.confDir,
		Scripts: func(key string) (string, bool) { return conf.Current().Lookup("powerops", key) },
		Logger:  logger.With("component", "power"),
	}
	syncer := &timesync.Syncer{
		Clock:  clock,
		Daemon: timesync.ProcDaemon("/proc"),
		Settings: func() timesync.Settings {
			f := conf.Current()
			return timesync.Settings{
				DisableAll:      f.Bool("timeSync", "disable-all", false),
				DisablePeriodic: f.Bool("timeSync", "disable-periodic", false),
				StepThreshold:   f.Seconds("timeSync", "step-threshold", timesync.DefaultStepThreshold),
			}
		},
		Logger: logger.With("component", "timesync"),
	}
	// Host time is read over the backdoor (GETTIMEFULL_WITH_LAG, then
	// GETTIMEFULL, then GETTIME) in auto and backdoor modes, once VMware
	// is detected; vsock and unix:DIR offer none, and Time_Synchronize
	// then answers "Unable to sync time".
	if hc, ok := tr.HostClock(); ok {
		syncer.Host = hc
	}
	svc := vmtoolsd.New(vmtoolsd.Config{
		DialTCLO:    tr.DialTCLO,
		RPCI:        client,
		Plugins:     []any{ops, syncer, gi, newVMBackup(conf, client, a.confDir, simulated, getenv, logger.With("component", "vmbackup"))},
		PrimaryIP:   gi,
		HideVersion: func() bool { return conf.Current().Bool("vmtools", "hide-tools-version", false) },
		ConfDir:     a.confDir,
		Uptime:      (&guestinfo.System{}).Uptime,
		Logger:      logger,
		OnReady: func() {
			notifier.Ready("Tools running")
		},
		OnActive: watchdog.Alive,
		OnStatus: func(s string) { notifier.Status(s) },
	})

	logger.Info("starting", "version", version.Version, "rpc", tr.Mode().String(), "config", a.config, "power-runner", runnerSpec, "simulated", simulated)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	wg.Go(func() { conf.Run(ctx) })
	wg.Go(func() { watchdog.Run(ctx) })
	if sink != nil {
		wg.Go(func() { sink.Run(ctx) })
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading tools.conf")
				conf.Load()
				gi.Update()
			}
		}
	})
	err = svc.Run(ctx)
	notifier.Stopping()
	cancel()
	wg.Wait()
	if err != nil {
		logger.Error("stopped", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// confSchema lists the tools.conf keys vmtoolsd honours.
func confSchema() toolsconf.Schema {
	powerops := map[string]toolsconf.Kind{}
	for _, k := range power.ConfKeys {
		powerops[k] = toolsconf.Path
	}
	return toolsconf.Schema{
		"powerops": powerops,
		"timeSync": {"disable-all": toolsconf.Bool, "disable-periodic": toolsconf.Bool, "step-threshold": toolsconf.Seconds, "timeInfo.enabled": toolsconf.Bool},
		"vmtools":  {"hide-tools-version": toolsconf.Bool, "disable-tools-version": toolsconf.Bool, "use-legacy-version": toolsconf.Bool},
		"logging":  {"log": toolsconf.Bool, "vmsvc.level": toolsconf.String, "vmsvc.handler": toolsconf.String, "vmtoolsd.level": toolsconf.String, "vmtoolsd.handler": toolsconf.String},
	}
}

// confLevel maps [logging] vmsvc.level (GLib level names) to slog.
func confLevel(f *toolsconf.File) slog.Level {
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

// oneCommand is --cmd: one RPCI over a one-shot channel.
func oneCommand(ctx context.Context, dial rpc.Dialer, cmd string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &rpc.Client{Dial: dial}
	defer c.Close()
	reply, err := c.Call(ctx, []byte(cmd))
	var re *rpc.ReplyError
	switch {
	case err == nil:
		if r := strings.TrimRight(string(reply), "\x00"); r != "" {
			fmt.Fprintln(stdout, r)
		}
		return 0
	case errors.As(err, &re):
		fmt.Fprintln(stderr, re.Text)
		return 1
	default:
		fmt.Fprintf(stderr, "vmtoolsd: %v\n", err)
		return 2
	}
}
