// Command vmxsim is the simulated VMX: it serves the host side of GuestRPC
// on unix sockets so govmtools (and open-vm-tools) can run on a machine
// that is not a VMware VM, and inspects what the host sees.
//
//	vmxsim serve --dir DIR [--share NAME=DIR[,ro]]... [--ping-interval D] [--tools-timeout D] [--trace FILE] [--vsphere HOST:PORT [--vm-nic MAC]...]
//	vmxsim run [--dir DIR] [--lb] [--keep-dead-channels] [--clock-offset D] [serve's flags] -- CMD ARGS...
//	vmxsim ctl --dir DIR state|log|tclo CMD|power OP|vsphere|backdoor OP
//	vmxsim ctl --dir DIR share enable|disable NAME
//	vmxsim ctl --dir DIR hgfs enable|disable|restart|fault SPEC
//
// run is the ptrace backdoor trap (linux/amd64): CMD runs unchanged, its
// backdoor instructions are answered by the same simulated VMX that serve
// runs, which also serves DIR's sockets meanwhile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/trap"
)

const usage = `usage:
  vmxsim serve --dir DIR [flags]    serve the simulated VMX on DIR/{tclo,rpci,ctl}.sock
  vmxsim run [--dir DIR] [--lb] [--keep-dead-channels] [--clock-offset D] [flags] -- CMD ARGS...
                                    run CMD under the backdoor trap against the same VMX
                                    (DIR defaults to a temporary directory; the host
                                    clock of the time commands runs D ahead)
  vmxsim ctl --dir DIR state        print what the host sees, as JSON
  vmxsim ctl --dir DIR log          print vmware.log
  vmxsim ctl --dir DIR tclo 'CMD'   send one TCLO command to the tools service
  vmxsim ctl --dir DIR power OP     queue a power operation: halt, reboot, poweron, resume, suspend
  vmxsim ctl --dir DIR vsphere      print the vSphere front end's URL (for GOVC_URL)
  vmxsim ctl --dir DIR backdoor checkpoint|reset
                                    (vmxsim run) fail the open channels' next transfer
                                    with CPT, or close every backdoor channel
  vmxsim ctl --dir DIR backdoor kill sendsize|sent|recvstatus [after N]
                                    (vmxsim run) SIGKILL the guest process whose RPCI
                                    message reaches that moment (after N more): as it
                                    announces the message, right after the VMX handled
                                    it, or as it acknowledges the reply
  vmxsim ctl --dir DIR backdoor clock D
                                    (vmxsim run) run the host clock D (e.g. 2h, -30s)
                                    ahead of the real time from now on
  vmxsim ctl --dir DIR share enable|disable NAME
                                    toggle one shared folder, as the host UI does
  vmxsim ctl --dir DIR hgfs enable|disable|restart
                                    shared folders on/off; restart the HGFS server
                                    (every session and handle goes stale)
  vmxsim ctl --dir DIR hgfs fault truncate|short N [OP]|none|nosessions on|off
                                    mangle the next N HGFS replies (to OP, e.g.
                                    GETATTR_V3, if given); refuse sessions
  vmxsim ctl --dir DIR fault hold RPCI [after N] | release [drop] | status
                                    hold requests of an RPCI command unhandled (after
                                    N more pass), then release them (handled) or drop
                                    them (never handled)

DIR defaults to $VMXSIM_DIR.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == trap.HelperArg {
		os.Exit(trap.HelperMain(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "run":
		var code int
		code, err = runCmd(ctx, args[1:], stderr)
		if err == nil {
			return code
		}
	case "ctl":
		err = ctl(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vmxsim: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "vmxsim: %v\n", err)
		return 1
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("dir", os.Getenv("VMXSIM_DIR"), "simulator directory (sockets and vmware.log)")
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addSimFlags(fs, "info")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("serve takes no arguments (got %q)", fs.Args()))
	}
	if sf.dir == "" {
		return usageError("serve needs --dir")
	}
	s, err := sf.setup(stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	if err := s.startVSphere(ctx, sf, &wg); err != nil {
		return err
	}
	err = s.srv.Serve(ctx, func() { s.logger.Info("serving", "dir", sf.dir) })
	s.logger.Info("stopped", "dir", sf.dir)
	return err
}

func ctl(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := dirFlag(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if *dir == "" {
		return usageError("ctl needs --dir")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError("ctl needs a command")
	}
	c := vmxsim.NewCtl(*dir)
	switch rest[0] {
	case "state":
		b, err := c.Do(ctx, "GET", "/state", "")
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "log":
		b, err := c.Do(ctx, "GET", "/log", "")
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "backdoor":
		path, body := "", ""
		switch {
		case len(rest) == 2 && (rest[1] == "checkpoint" || rest[1] == "reset"):
			path = "/backdoor/" + rest[1]
		case len(rest) == 3 && rest[1] == "kill":
			path = "/backdoor/kill?at=" + url.QueryEscape(rest[2])
		case len(rest) == 5 && rest[1] == "kill" && rest[3] == "after":
			path = "/backdoor/kill?at=" + url.QueryEscape(rest[2]) + "&after=" + url.QueryEscape(rest[4])
		case len(rest) == 3 && rest[1] == "clock":
			if _, err := time.ParseDuration(rest[2]); err != nil {
				return usageError("backdoor clock needs a duration such as 2h or -30s")
			}
			path, body = "/backdoor/clock", rest[2]
		default:
			return usageError("backdoor needs checkpoint, reset, kill sendsize|sent|recvstatus [after N] or clock D")
		}
		b, err := c.Do(ctx, "POST", path, body)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	case "power":
		if len(rest) != 2 {
			return usageError("power needs one operation: halt, reboot, poweron, resume or suspend")
		}
		if _, ok := vmxsim.PowerOps[rest[1]]; !ok {
			return usageError(fmt.Sprintf("unknown power operation %q", rest[1]))
		}
		reply, err := c.Power(ctx, rest[1])
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, reply)
		return err
	case "vsphere":
		u, err := c.VSphereURL(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, u)
		return err
	case "tclo":
		if len(rest) < 2 {
			return usageError("tclo needs a command, e.g. tclo 'Set_Option broadcastIP 1'")
		}
		reply, err := c.TCLO(ctx, strings.Join(rest[1:], " "))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, reply)
		return err
	case "share":
		if len(rest) != 3 || (rest[1] != "enable" && rest[1] != "disable") {
			return usageError("share needs enable|disable NAME")
		}
		return c.Share(ctx, rest[2], rest[1] == "enable")
	case "hgfs":
		if len(rest) < 2 {
			return usageError("hgfs needs enable, disable, restart or fault SPEC")
		}
		return c.HGFS(ctx, strings.Join(rest[1:], " "))
	case "fault":
		return ctlFault(ctx, c, rest[1:], stdout)
	}
	return usageError(fmt.Sprintf("unknown ctl command %q", rest[0]))
}

func ctlFault(ctx context.Context, c *vmxsim.Ctl, args []string, stdout io.Writer) error {
	var err error
	var b []byte
	switch {
	case len(args) == 2 && args[0] == "hold":
		_, err = c.Do(ctx, "POST", "/fault/hold?rpci="+url.QueryEscape(args[1]), "")
	case len(args) == 4 && args[0] == "hold" && args[2] == "after":
		_, err = c.Do(ctx, "POST", "/fault/hold?rpci="+url.QueryEscape(args[1])+"&after="+url.QueryEscape(args[3]), "")
	case len(args) == 1 && args[0] == "release":
		_, err = c.Do(ctx, "POST", "/fault/release", "")
	case len(args) == 2 && args[0] == "release" && args[1] == "drop":
		_, err = c.Do(ctx, "POST", "/fault/release?drop=1", "")
	case len(args) == 1 && args[0] == "status":
		if b, err = c.Do(ctx, "GET", "/fault", ""); err == nil {
			_, err = stdout.Write(b)
		}
	default:
		return usageError("fault hold RPCI [after N] | release [drop] | status")
	}
	return err
}
