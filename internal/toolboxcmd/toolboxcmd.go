// Package toolboxcmd is vmware-toolbox-cmd: the command-line tool admins,
// cloud-init and other scripts use to query and change VMware Tools
// settings (tools.conf, the power scripts, time sync, logging levels) and
// to ask the host about the VM (host time, CPU speed, guestlib resource
// statistics, removable devices, disk shrinking). Its command line, its
// messages and its exit codes are those of open-vm-tools 12.2.0's
// vmware-toolbox-cmd on Linux, byte for byte, so that scripts written
// against it keep working; docs/toolbox-cmd.md lists the few differences
// and why.
//
// Run takes the whole command line (argv[0] included: every message names
// the program as it was typed) and an Env with the host, tools.conf's
// directory and the process's facts, and returns the exit code.
package toolboxcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// Exit codes (sysexits.h), as open-vm-tools uses them.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExUsage         = 64
	ExUnavailable   = 69
	ExSoftware      = 70
	ExOSFile        = 72
	ExTempFail      = 75
	ExNoPerm        = 77
	ExitInterrupted = 130
)

// Host is the VMX as vmware-toolbox-cmd reaches it.
type Host interface {
	// LB makes one low-bandwidth backdoor call; an error means there is
	// no backdoor to call (not a VMware VM, or a transport without one).
	LB(r *backdoor.Regs) error
	// RPC sends one RPCI request and returns the reply's payload (after
	// "1 "); a "0 " reply is an *rpc.ReplyError.
	RPC(ctx context.Context, req []byte) ([]byte, error)
}

// Env is what a run needs of its process and machine.
type Env struct {
	Stdout, Stderr io.Writer
	Host           Host
	// CheckVM reports why this is not a VM whose VMX answers, or nil.
	CheckVM func() error
	// ConfDir holds tools.conf, tools-global.conf and the default power
	// scripts; "" means toolsconf.DefaultDir.
	ConfDir string
	// IsRoot reports whether the process may change the configuration;
	// nil means the effective uid is 0.
	IsRoot func() bool
	// NicInfo returns the XDR NicInfo V3 payload of this machine's
	// network configuration for `info update network`, with tools.conf's
	// [guestinfo] settings; nil means the command fails.
	NicInfo func(conf *toolsconf.File) ([]byte, error)
	// Mounts and ProcDevices are /proc/mounts and /proc/devices (for
	// `disk`); "" means those.
	Mounts, ProcDevices string
	// Location is the zone `stat hosttime` prints in; nil means
	// time.Local.
	Location *time.Location
	// GuestStorePipe is the GuestStore plugin's socket; "" means
	// /var/run/vmware/guestStorePipe.
	GuestStorePipe string
	// Version is the govmtools version printed by -v.
	Version string
}

// ToolsVersion is the open-vm-tools version vmware-toolbox-cmd -v reports
// (vmtoolsd claims the same one to the VMX).
const ToolsVersion = "12.2.0"

// run is one invocation.
type run struct {
	*Env
	ctx   context.Context
	prog  string
	quiet bool
	args  []string // the non-option arguments, the command first
}

// print writes to stdout unless -q (ToolsCmd_Print).
func (r *run) print(format string, a ...any) {
	if !r.quiet {
		fmt.Fprintf(r.Stdout, format, a...)
	}
}

// printErr writes to stderr unless -q (ToolsCmd_PrintErr).
func (r *run) printErr(format string, a ...any) {
	if !r.quiet {
		fmt.Fprintf(r.Stderr, format, a...)
	}
}

// out writes to stdout even under -q (g_print).
func (r *run) out(format string, a ...any) { fmt.Fprintf(r.Stdout, format, a...) }

// errOut writes to stderr even under -q (g_printerr).
func (r *run) errOut(format string, a ...any) { fmt.Fprintf(r.Stderr, format, a...) }

func (r *run) missing(what string) int {
	r.errOut("%s: Missing %s\n", r.prog, what)
	return ExUsage
}

func (r *run) unknown(what, s string) int {
	r.errOut("%s: Unknown %s '%s'\n", r.prog, what, s)
	return ExUsage
}

// command is one entry of the command table.
type command struct {
	name     string
	fn       func(r *run) int
	needsArg bool // a subcommand must follow
	needRoot bool
	help     func(r *run, name string)
}

func commandTable() []command {
	return []command{
		{"timesync", (*run).timesync, true, false, helpText(helpTimesync)},
		{"script", (*run).script, false, true, helpText(helpScript)},
		{"disk", (*run).disk, true, true, helpText(helpDisk)},
		{"stat", (*run).stat, true, false, helpText(helpStat)},
		{"device", (*run).device, true, false, helpText(helpDevice)},
		{"gueststore", (*run).gueststore, true, false, helpText(helpGuestStore)},
		{"globalconf", (*run).globalconf, true, true, helpText(helpGlobalConf)},
		{"logging", (*run).logging, true, true, helpLogging},
		{"info", (*run).info, true, true, helpText(helpInfo)},
		{"config", (*run).config, true, true, helpText(helpConfig)},
		{"help", (*run).helpCommand, false, false, func(r *run, _ string) { r.mainHelp("help") }},
	}
}

// Run runs vmware-toolbox-cmd with argv (argv[0] is the program name as
// typed) and returns the exit code.
func Run(ctx context.Context, argv []string, env *Env) int {
	r := &run{Env: env, ctx: ctx, prog: "vmware-toolbox-cmd"}
	if len(argv) > 0 {
		r.prog, argv = argv[0], argv[1:]
	}
	if r.ConfDir == "" {
		r.ConfDir = toolsconf.DefaultDir
	}
	if r.CheckVM != nil && r.CheckVM() != nil {
		r.errOut("%s must be run inside a virtual machine.\n", r.prog)
		return ExitFailure
	}
	opts, args, bad := getopt(argv)
	if bad != "" {
		r.errOut("%s: %s\n", r.prog, bad)
		r.errOut("Try '%s -h' for more information.\n", r.prog)
		return ExitFailure
	}
	r.args = args
	r.quiet = opts.quiet
	switch {
	case opts.version:
		r.out("%s.0 (govmtools %s)\n", ToolsVersion, r.Version)
		return ExitOK
	case opts.help:
		r.mainHelp("help")
		return ExitOK
	}
	return r.dispatch()
}

func (r *run) dispatch() int {
	if len(r.args) == 0 {
		code := r.missing("command")
		r.errOut("Try '%s help' for more information.\n", r.prog)
		return code
	}
	var cmd *command
	for _, c := range commandTable() {
		if c.name == r.args[0] {
			cmd = &c
			break
		}
	}
	var code int
	switch {
	case cmd == nil:
		code = r.unknown("command", r.args[0])
	case cmd.needRoot && !r.isRoot():
		r.errOut("%s: You must be root to perform %s operations.\n", r.prog, cmd.name)
		return ExNoPerm
	case cmd.needsArg && len(r.args) < 2:
		code = r.missing("subcommand")
	default:
		code = cmd.fn(r)
	}
	if code == ExUsage {
		switch {
		case cmd == nil:
			r.errOut("Try '%s help' for more information.\n", r.prog)
		case cmd.name != "help":
			r.errOut("Try '%s help %s' for more information.\n", r.prog, cmd.name)
		}
	}
	return code
}

func (r *run) isRoot() bool {
	if r.IsRoot != nil {
		return r.IsRoot()
	}
	return os.Geteuid() == 0
}

// helpCommand is `help [COMMAND]`.
func (r *run) helpCommand() int {
	if len(r.args) < 2 {
		r.mainHelp("help")
		return ExitOK
	}
	for _, c := range commandTable() {
		if c.name == r.args[1] {
			c.help(r, c.name)
			return ExitOK
		}
	}
	r.unknown("subcommand", r.args[1])
	r.mainHelp("help")
	return ExUsage
}

func (r *run) mainHelp(cmd string) {
	r.out(helpMain, r.prog, r.prog, cmd, r.prog)
}

// helpText prints a command's help: its name, then the program and the
// name again in the usage line.
func helpText(text string) func(r *run, name string) {
	return func(r *run, name string) { r.out(text, name, r.prog, name) }
}

func helpLogging(r *run, name string) { r.out(helpLog, name, r.prog, name, defaultLogLevel) }

// options are the global options.
type options struct{ help, quiet, version bool }

// getopt parses the options as glibc's getopt_long with "hqv" and
// --help/--quiet/--version does: options may come anywhere (GNU
// permutation) until "--", short ones may be grouped, long ones may be
// abbreviated. bad is glibc's message (without the program name) for
// the first option it refuses.
func getopt(argv []string) (o options, args []string, bad string) {
	set := func(c byte) bool {
		switch c {
		case 'h':
			o.help = true
		case 'q':
			o.quiet = true
		case 'v':
			o.version = true
		default:
			return false
		}
		return true
	}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--":
			return o, append(args, argv[i+1:]...), ""
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			full := ""
			for _, l := range []string{"help", "quiet", "version"} {
				if name != "" && strings.HasPrefix(l, name) {
					full = l
				}
			}
			if full == "" {
				return o, nil, fmt.Sprintf("unrecognized option '%s'", a)
			}
			if hasValue {
				return o, nil, fmt.Sprintf("option '--%s' doesn't allow an argument", full)
			}
			set(full[0])
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				if !set(a[j]) {
					return o, nil, fmt.Sprintf("invalid option -- '%c'", a[j])
				}
			}
		default:
			args = append(args, a)
		}
	}
	return o, args, ""
}

// Option is one global option, for the man page and the completion the
// packaging generates (open-vm-tools' --help lists none).
type Option struct{ Short, Long, Desc string }

// Options are the global options getopt accepts.
var Options = []Option{
	{"-h", "--help", "print the main help and exit"},
	{"-q", "--quiet", "print nothing on stdout or stderr that a script does not need (results and errors of queries stay)"},
	{"-v", "--version", "print the VMware Tools version and exit"},
}

// Commands lists the commands, as `help COMMAND` takes them.
func Commands() []string {
	var names []string
	for _, c := range commandTable() {
		names = append(names, c.name)
	}
	return names
}
