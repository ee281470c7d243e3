package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
)

// ctlVerb runs one `vmxsim ctl` verb with the words after it.
type ctlVerb func(ctx context.Context, c *vmxsim.Ctl, args []string, stdout io.Writer) error

// ctlVerbs are the verbs of `vmxsim ctl`, each on a typed vmxsim.Ctl
// method.
var ctlVerbs = map[string]ctlVerb{
	"state": func(ctx context.Context, c *vmxsim.Ctl, _ []string, out io.Writer) error {
		return write(out)(c.StateJSON(ctx))
	},
	"log": func(ctx context.Context, c *vmxsim.Ctl, _ []string, out io.Writer) error {
		return write(out)(c.Log(ctx))
	},
	"vsphere": func(ctx context.Context, c *vmxsim.Ctl, _ []string, out io.Writer) error {
		return writeLine(out)(c.VSphereURL(ctx))
	},
	"tclo":     ctlTCLO,
	"guest":    vmxsim.GuestCommand,
	"power":    ctlPower,
	"backdoor": ctlBackdoor,
	"share":    ctlShare,
	"hgfs":     ctlHGFS,
	"fault":    ctlFault,
	"snapshot": ctlSnapshot,
}

// ctl is `vmxsim ctl --dir DIR VERB ARGS...`.
func ctl(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	dir := fs.String("dir", os.Getenv("VMXSIM_DIR"), "simulator directory (sockets and vmware.log)")
	if err := parseFlags(fs, args, stdout, "vmxsim ctl --dir DIR VERB [ARGS] (see vmxsim --help)"); err != nil {
		return 0, err
	}
	if *dir == "" {
		return 0, usageError{cmd: "ctl", msg: "ctl needs --dir"}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return 0, usageError{cmd: "ctl", msg: "ctl needs a command"}
	}
	verb, ok := ctlVerbs[rest[0]]
	if !ok {
		return 0, usageError{cmd: "ctl", msg: fmt.Sprintf("unknown ctl command %q", rest[0])}
	}
	return 0, verb(ctx, vmxsim.NewCtl(*dir), rest[1:], stdout)
}

// write returns a function writing a body to out as it came.
func write(out io.Writer) func([]byte, error) error {
	return func(b []byte, err error) error {
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
}

// writeLine returns a function writing a reply to out as one line.
func writeLine(out io.Writer) func(string, error) error {
	return func(s string, err error) error {
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, s)
		return err
	}
}

func ctlUsage(msg string) error { return usageError{cmd: "ctl", msg: msg} }

func ctlTCLO(ctx context.Context, c *vmxsim.Ctl, args []string, out io.Writer) error {
	if len(args) == 0 {
		return ctlUsage("tclo needs a command, e.g. tclo 'Set_Option broadcastIP 1'")
	}
	return writeLine(out)(c.TCLO(ctx, strings.Join(args, " ")))
}

func ctlPower(ctx context.Context, c *vmxsim.Ctl, args []string, out io.Writer) error {
	if len(args) != 1 {
		return ctlUsage("power needs one operation: halt, reboot, poweron, resume or suspend")
	}
	if _, ok := vmxsim.PowerOps[args[0]]; !ok {
		return ctlUsage(fmt.Sprintf("unknown power operation %q", args[0]))
	}
	return writeLine(out)(c.Power(ctx, args[0]))
}

func ctlBackdoor(ctx context.Context, c *vmxsim.Ctl, args []string, out io.Writer) error {
	const want = "backdoor needs checkpoint, reset, kill sendsize|sent|recvstatus [after N] or clock D"
	switch {
	case len(args) == 1 && args[0] == "checkpoint":
		return write(out)(c.BackdoorCheckpoint(ctx))
	case len(args) == 1 && args[0] == "reset":
		return write(out)(c.BackdoorReset(ctx))
	case len(args) == 2 && args[0] == "kill":
		return write(out)(c.BackdoorKill(ctx, args[1], 0))
	case len(args) == 4 && args[0] == "kill" && args[2] == "after":
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 0 {
			return ctlUsage("backdoor kill ... after wants a count")
		}
		return write(out)(c.BackdoorKill(ctx, args[1], n))
	case len(args) == 2 && args[0] == "clock":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return ctlUsage("backdoor clock needs a duration such as 2h or -30s")
		}
		return write(out)(c.BackdoorClock(ctx, d))
	}
	return ctlUsage(want)
}

func ctlShare(ctx context.Context, c *vmxsim.Ctl, args []string, _ io.Writer) error {
	if len(args) != 2 || (args[0] != "enable" && args[0] != "disable") {
		return ctlUsage("share needs enable|disable NAME")
	}
	return c.Share(ctx, args[1], args[0] == "enable")
}

func ctlHGFS(ctx context.Context, c *vmxsim.Ctl, args []string, _ io.Writer) error {
	if len(args) == 0 {
		return ctlUsage("hgfs needs enable, disable, restart or fault SPEC")
	}
	return c.HGFS(ctx, strings.Join(args, " "))
}

func ctlFault(ctx context.Context, c *vmxsim.Ctl, args []string, out io.Writer) error {
	switch {
	case len(args) == 2 && args[0] == "hold":
		return c.HoldRPCI(ctx, args[1], 0)
	case len(args) == 4 && args[0] == "hold" && args[2] == "after":
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 0 {
			return ctlUsage("fault hold RPCI after wants a count")
		}
		return c.HoldRPCI(ctx, args[1], n)
	case len(args) == 1 && args[0] == "release":
		return c.ReleaseRPCI(ctx, false)
	case len(args) == 2 && args[0] == "release" && args[1] == "drop":
		return c.ReleaseRPCI(ctx, true)
	case len(args) == 1 && args[0] == "status":
		return write(out)(c.FaultStatus(ctx))
	}
	return ctlUsage("fault hold RPCI [after N] | release [drop] | status")
}

// ctlSnapshot is `ctl snapshot [flags]` (a quiesced snapshot unless
// -no-quiesce; prints the operation's record, fails with its fault) and
// `ctl snapshot abort`.
func ctlSnapshot(ctx context.Context, c *vmxsim.Ctl, args []string, out io.Writer) error {
	if len(args) == 1 && args[0] == "abort" {
		return writeLine(out)(c.SnapshotAbort(ctx))
	}
	if len(args) == 2 && args[0] == "delay-done" {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return ctlUsage("snapshot delay-done needs a duration such as 5s")
		}
		return c.SnapshotDelayDone(ctx, d)
	}
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	noQuiesce := fs.Bool("no-quiesce", false, "take the snapshot without the guest")
	start := fs.String("args", quiesce.DefaultStartArgs, "the arguments of vmbackup.start (\"\" sends a bare vmbackup.start)")
	delay := fs.Duration("delay-done", 0, "fault injection: hold vmbackup.snapshotDone back this long")
	idle := fs.Duration("event-timeout", 0, "how long the guest may stay silent (0: 30s)")
	total := fs.Duration("timeout", 0, "bound on the whole operation (0: 15m)")
	if err := parseFlags(fs, args, out, "vmxsim ctl snapshot [-no-quiesce] [-args A] [-delay-done D] [-event-timeout D] [-timeout D] | abort"); err != nil {
		return err
	}
	opts := quiesce.Options{Quiesce: !*noQuiesce, StartArgs: start, DelayDone: quiesce.Duration(*delay),
		EventTimeout: quiesce.Duration(*idle), Timeout: quiesce.Duration(*total)}
	res, err := c.Snapshot(ctx, opts)
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintf(out, "%s\n", b)
	return err
}
