// Command vmxsim is the simulated VMX: it serves the host side of GuestRPC
// on unix sockets so govmtools (and open-vm-tools) can run on a machine
// that is not a VMware VM, and inspects what the host sees.
//
//	vmxsim serve --dir DIR [--ping-interval D] [--tools-timeout D]
//	vmxsim ctl --dir DIR state|log|tclo CMD
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
)

const usage = `usage:
  vmxsim serve --dir DIR [flags]    serve the simulated VMX on DIR/{tclo,rpci,ctl}.sock
  vmxsim ctl --dir DIR state        print what the host sees, as JSON
  vmxsim ctl --dir DIR log          print vmware.log
  vmxsim ctl --dir DIR tclo 'CMD'   send one TCLO command to the tools service
  vmxsim ctl --dir DIR fault hold RPCI [after N] | release [drop] | status
                                    hold requests of an RPCI command unhandled (after
                                    N more pass), then release them (handled) or drop
                                    them (never handled)

DIR defaults to $VMXSIM_DIR.
`

func main() {
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
	dir := dirFlag(fs)
	ping := fs.Duration("ping-interval", time.Second, "TCLO ping cadence")
	toolsTimeout := fs.Duration("tools-timeout", 0, "how long tools count as running after their channel closes (default 10 ping intervals)")
	exchangeTimeout := fs.Duration("exchange-timeout", 10*time.Second, "wait for the guest's answer to one TCLO command")
	logLevel := fs.String("log-level", "info", "simulator log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if *dir == "" {
		return usageError("serve needs --dir")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError(err.Error())
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	core, err := vmxsim.New(vmxsim.Options{
		LogPath:         *dir + "/" + vmxsim.LogFile,
		PingInterval:    *ping,
		ToolsTimeout:    *toolsTimeout,
		ExchangeTimeout: *exchangeTimeout,
		Logger:          logger,
	})
	if err != nil {
		return err
	}
	defer core.Close()
	srv := vmxsim.NewServer(core, *dir)
	err = srv.Serve(ctx, func() { logger.Info("serving", "dir", *dir) })
	logger.Info("stopped", "dir", *dir)
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
