// Command vmxsim is the simulated VMX: it serves the host side of GuestRPC
// on unix sockets so govmtools (and open-vm-tools) can run on a machine
// that is not a VMware VM, and inspects what the host sees.
//
//	vmxsim serve --dir DIR [--ping-interval D] [--tools-timeout D] [--vsphere HOST:PORT]
//	vmxsim ctl --dir DIR state|log|tclo CMD|power OP|vsphere
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
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
)

const usage = `usage:
  vmxsim serve --dir DIR [flags]    serve the simulated VMX on DIR/{tclo,rpci,ctl}.sock
  vmxsim ctl --dir DIR state        print what the host sees, as JSON
  vmxsim ctl --dir DIR log          print vmware.log
  vmxsim ctl --dir DIR tclo 'CMD'   send one TCLO command to the tools service
  vmxsim ctl --dir DIR power OP     queue a power operation: halt, reboot, poweron, resume, suspend
  vmxsim ctl --dir DIR vsphere      print the vSphere front end's URL (for GOVC_URL)

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
	vsphereAddr := fs.String("vsphere", "", "also serve a vSphere front end (govmomi's vcsim) on HOST:PORT; port 0 picks a free port")
	vmName := fs.String("vm-name", "govmtools-vm", "the vSphere front end's VM name")
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
	var wg sync.WaitGroup
	defer wg.Wait()
	if *vsphereAddr != "" {
		vs, err := vmxsim.NewVSphere(ctx, core, vmxsim.VSphereOptions{Addr: *vsphereAddr, VMName: *vmName, Logger: logger})
		if err != nil {
			return err
		}
		defer vs.Close()
		srv.AttachVSphere(vs)
		wg.Go(func() { vs.Run(ctx) })
		logger.Info("vSphere front end", "url", vs.URL().String(), "vm", *vmName)
	}
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
	}
	return usageError(fmt.Sprintf("unknown ctl command %q", rest[0]))
}
