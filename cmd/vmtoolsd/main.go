// Command vmtoolsd is govmtools' VMware tools service: the daemon vSphere
// talks to. It answers the VMX's TCLO commands (reset, ping, Set_Option,
// Capabilities_Register, guest power operations, time sync), reports the
// tools version and capabilities, reports guest info (host name, OS, NICs
// with addresses, routes and DNS, disks, uptime) as the network changes,
// sends its warnings to vmware.log, and runs under systemd with
// readiness, a watchdog and status lines. The daemon is assembled by
// vmtoolsd/daemon; this command parses the flags.
//
//	vmtoolsd [--rpc MODE] [-c tools.conf] [--conf-dir DIR] [--power-runner system|record:FILE]
//	vmtoolsd --cmd 'RPCI'    send one RPCI command and print the reply
//	vmtoolsd -v|--version    print the version
//
// Host time for Time_Synchronize and the synctime options comes from the
// backdoor's time commands (in --rpc auto and backdoor). Under vmxsim
// (GOVMTOOLS_SIMULATED=1) the power runner only records and the clock is
// never set: steps and slews are logged.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/daemon"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vmbackup"
)

const usage = `usage: vmtoolsd [--rpc MODE] [-c tools.conf] [--conf-dir DIR] [--power-runner system|record:FILE]
       vmtoolsd --cmd 'RPCI'
       vmtoolsd -v|--version`

func main() {
	if len(os.Args) > 1 && os.Args[1] == vmbackup.GuardCommand {
		// The thaw guard: a re-exec of vmtoolsd that thaws what a killed
		// daemon left frozen.
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
	rpc, config, confDir, powerRunner, cmd string
	logLevel                               cmdutil.LogLevel
	vmxLog                                 bool
}

func defineFlags(cli *cmdutil.CLI) *args {
	a := &args{}
	fs := cli.Flags
	fs.StringVar(&a.rpc, "rpc", "", "how to reach the VMX: auto, vsock, backdoor or unix:DIR (default $GOVMTOOLS_RPC, then auto)")
	fs.StringVar(&a.config, "c", "", "tools.conf to read (default CONF-DIR/tools.conf)")
	fs.StringVar(&a.config, "config", "", "same as -c")
	fs.StringVar(&a.confDir, "conf-dir", toolsconf.DefaultDir, "directory of tools.conf and the default power scripts")
	fs.StringVar(&a.powerRunner, "power-runner", "", "how halt and reboot are done: system (logind, then systemctl -i) or record:FILE (append the action to FILE and do nothing); default system on a VMware VM, record: (log only) with --rpc unix:DIR, under GOVMTOOLS_SIMULATED=1 or on any other machine")
	fs.Var(&a.logLevel, "log-level", "stderr/journal log level: "+cmdutil.LevelNames+" (default tools.conf [logging] vmsvc.level, then info)")
	fs.BoolVar(&a.vmxLog, "vmx-log", true, "also send warnings and errors to vmware.log (rate-limited)")
	fs.StringVar(&a.cmd, "cmd", "", "send one RPCI command, print the reply and exit")
	cli.VersionAlias("v")
	v := vmtoolsd.DefaultVersion()
	cli.VersionDetail = fmt.Sprintf("open-vm-tools %s compatible (TOOLS_VERSION_UINT %d)", v, v.Uint())
	return a
}

func run(ctx context.Context, argv []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cli := cmdutil.NewCLI("vmtoolsd", usage, stdout, stderr)
	a := defineFlags(cli)
	if code, exit := cli.Parse(argv); exit {
		return code
	}
	if cli.Flags.NArg() > 0 {
		return cli.UsageError("unexpected arguments %q", cli.Flags.Args())
	}
	mode, err := transport.Select(a.rpc, getenv(transport.EnvRPC))
	if err != nil {
		return cli.UsageError("%v", err)
	}
	simulated := getenv(transport.EnvSimulated) == "1"
	if a.cmd != "" {
		logger := cmdutil.Logger(stderr, a.logLevel.Level)
		tr := transport.New(transport.Config{Mode: mode, Simulated: simulated, Logger: logger})
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return cmdutil.OneShot(ctx, cli.Name, tr.DialRPCIOneShot, []byte(a.cmd), logger, stdout, stderr)
	}
	cfg := daemon.Config{
		Mode:           mode,
		Simulated:      simulated,
		ConfigPath:     a.config,
		ConfigRequired: a.config != "",
		ConfDir:        a.confDir,
		PowerRunner:    a.powerRunner,
		VMXLog:         a.vmxLog,
		Getenv:         getenv,
		Stderr:         stderr,
	}
	if cfg.ConfigPath == "" {
		cfg.ConfigPath = strings.TrimSuffix(a.confDir, "/") + "/tools.conf"
	}
	if a.logLevel.IsSet {
		cfg.LogLevel = &a.logLevel.Level
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if err := d.Run(ctx); err != nil {
		return 1
	}
	return 0
}
