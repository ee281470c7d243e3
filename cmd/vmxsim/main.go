// Command vmxsim is the simulated VMX: it serves the host side of GuestRPC
// on unix sockets so govmtools (and open-vm-tools) can run on a machine
// that is not a VMware VM, and inspects what the host sees.
//
//	vmxsim serve --dir DIR [--share NAME=DIR[,ro]]... [--ping-interval D] [--tools-timeout D]
//	vmxsim ctl --dir DIR state|log|tclo CMD
//	vmxsim ctl --dir DIR share enable|disable NAME
//	vmxsim ctl --dir DIR hgfs enable|disable|restart|fault SPEC
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
  vmxsim ctl --dir DIR share enable|disable NAME
                                    toggle one shared folder, as the host UI does
  vmxsim ctl --dir DIR hgfs enable|disable|restart
                                    shared folders on/off; restart the HGFS server
                                    (every session and handle goes stale)
  vmxsim ctl --dir DIR hgfs fault truncate|short N [OP]|none|nosessions on|off
                                    mangle the next N HGFS replies (to OP, e.g.
                                    GETATTR_V3, if given); refuse sessions

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
	var shares vmxsim.ShareFlag
	fs.Var(&shares, "share", vmxsim.ShareFlagUsage)
	hgfsMaxPacket := fs.Uint("hgfs-max-packet", 0, "HGFS packet size the host offers (default 522240)")
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
		Shares:          shares,
		HGFSMaxPacket:   uint32(*hgfsMaxPacket),
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
	}
	return usageError(fmt.Sprintf("unknown ctl command %q", rest[0]))
}
