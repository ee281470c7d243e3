// Command vmware-kmsgdump puts the kernel's crash records and warnings into
// the VM's vmware.log, as Photon's kernel dumper does at panic time, but
// from user space: at boot it ships what pstore and kdump saved from the
// previous boot, and with --follow it then streams /dev/kmsg.
//
//	vmware-kmsgdump [--rpc MODE] [--pstore DIR] [--crash-dir DIR] [--kmsg PATH]
//	                [--state-dir DIR] [--level LEVEL] [--once|--follow]
//
// Under systemd (Type=notify) it reports READY=1 once the saved records
// are shipped, or after --ready-timeout if the host does not answer, so
// that boot is never held up by an unreachable host.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/kmsgdump"
	"github.com/govmtools/govmtools/systemd"
)

const usage = "usage: vmware-kmsgdump [--rpc MODE] [--pstore DIR] [--crash-dir DIR] [--kmsg PATH] [--state-dir DIR] [--level LEVEL] [--once|--follow]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cli := cmdutil.NewCLI("vmware-kmsgdump", usage, stdout, stderr)
	f := defineFlags(cli.Flags)
	if code, exit := cli.Parse(args); exit {
		return code
	}
	if cli.Flags.NArg() > 0 {
		return cli.UsageError("unexpected arguments %q", cli.Flags.Args())
	}
	cfg, err := f.config()
	if err != nil {
		return cli.UsageError("%v", err)
	}
	logLevel := slog.LevelInfo
	if *f.debug {
		logLevel = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, logLevel)
	tr, err := cmdutil.Transport(*f.rpc, logger)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if cfg.Boot, err = kmsgdump.CurrentBoot(); err != nil {
		logger.Warn("cannot identify this boot; records will not name it", "err", err)
	}
	// The backdoor first (auto mode): a restart after a kill can ask it
	// whether the line in flight arrived.
	shipper := &kmsgdump.Shipper{Dial: tr.DialRPCIResumable, Resume: tr.ResumeRPCI, Logger: logger}
	defer shipper.Close()
	sd, err := systemd.Open(os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		logger.Warn("cannot reach systemd's notify socket", "err", err)
	}
	defer sd.Close()
	notify := &notifier{sd: sd, logger: logger}
	cfg.Shipper, cfg.Logger, cfg.Ready = shipper, logger, notify.readyFunc(*f.once, *f.kmsg)
	d, err := kmsgdump.New(cfg)
	if err != nil {
		return cli.Fail(err)
	}
	defer d.Close()
	if *f.once {
		return shipOnce(ctx, d, *f.timeout, logger, cli)
	}
	// Never hold boot up for an unreachable host.
	readyTimer := time.AfterFunc(*f.readyTimeout, func() {
		notify.ready("the host has not taken the saved kernel log records yet; still trying")
	})
	defer readyTimer.Stop()
	err = d.Run(ctx)
	notify.stopping()
	if err != nil {
		return cli.Fail(err)
	}
	return 0
}

// shipOnce is --once: ship the saved records within timeout.
func shipOnce(ctx context.Context, d *kmsgdump.Dumper, timeout time.Duration, logger *slog.Logger, cli *cmdutil.CLI) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := d.ShipSaved(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the host did not take the records within %v; the rest ships on the next run: %w", timeout, err)
		}
		return cli.Fail(err)
	}
	logger.Info("saved kernel logs shipped", "records", n)
	return 0
}
