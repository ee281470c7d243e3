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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/kmsgdump"
	"github.com/govmtools/govmtools/kmsgdump/kmsg"
	"github.com/govmtools/govmtools/systemd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmware-kmsgdump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vmware-kmsgdump [--rpc MODE] [--pstore DIR] [--crash-dir DIR] [--kmsg PATH] [--state-dir DIR] [--level LEVEL] [--once|--follow]")
		fs.PrintDefaults()
	}
	rpcMode := cmdutil.RPCFlag(fs)
	pstore := fs.String("pstore", "/sys/fs/pstore", "pstore directory whose dmesg-* records are shipped (\"\" to skip)")
	crashDir := fs.String("crash-dir", "/var/crash", "kdump directory whose */vmcore-dmesg.txt and */dmesg.* are shipped (\"\" to skip)")
	kmsgPath := fs.String("kmsg", "/dev/kmsg", "kernel log to follow (a FIFO or file in /dev/kmsg format also works)")
	stateDir := fs.String("state-dir", "/var/lib/govmtools/kmsgdump", "where shipping progress, the kmsg cursor and archived records are kept")
	levelName := fs.String("level", "warning", "least severe kernel level streamed: emerg, alert, crit, err, warning, notice, info, debug")
	once := fs.Bool("once", false, "ship the saved records (pstore, kdump), then exit")
	follow := fs.Bool("follow", false, "ship the saved records, then stream the kernel log (the default)")
	pstoreAfter := fs.String("pstore-after", "archive", "what to do with shipped pstore records: archive (copy to STATE-DIR/archive, then remove from pstore), remove, keep")
	crashAfter := fs.String("crash-after", "keep", "what to do with shipped kdump dmesg files: keep, archive, remove")
	rate := fs.Float64("rate", 50, "live lines per second let through to vmware.log (0: no limit)")
	burst := fs.Int("burst", 500, "live lines let through in a burst above --rate")
	before := fs.Int("context-before", 20, "records shipped before an incident (Oops, BUG:, panic, hung task, OOM, WARNING)")
	after := fs.Int("context-after", 100, "records shipped after an incident")
	queue := fs.Int("queue", 4096, "live lines held while the host is unreachable; beyond it lines are dropped and counted")
	timeout := fs.Duration("timeout", time.Minute, "with --once, give up after this long if the host does not answer")
	readyTimeout := fs.Duration("ready-timeout", 10*time.Second, "with --follow, tell systemd READY=1 after this long even if the saved records are not shipped yet")
	debug := fs.Bool("debug", false, "log debugging detail to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if *once && *follow {
		fmt.Fprintln(stderr, "vmware-kmsgdump: --once and --follow exclude each other")
		return 2
	}
	level, err := kmsg.ParseLevel(*levelName)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: --level: %v\n", err)
		return 2
	}
	pAfter, err := kmsgdump.ParseDisposition(*pstoreAfter)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: --pstore-after: %v\n", err)
		return 2
	}
	cAfter, err := kmsgdump.ParseDisposition(*crashAfter)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: --crash-after: %v\n", err)
		return 2
	}
	logLevel := slog.LevelInfo
	if *debug {
		logLevel = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, logLevel)
	tr, err := cmdutil.Transport(*rpcMode, logger)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: %v\n", err)
		return 2
	}
	boot, err := kmsgdump.CurrentBoot()
	if err != nil {
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
	cfg := kmsgdump.Config{
		Shipper:     shipper,
		StateDir:    *stateDir,
		PstoreDir:   *pstore,
		CrashDir:    *crashDir,
		PstoreAfter: pAfter,
		CrashAfter:  cAfter,
		Boot:        boot,
		Follow:      !*once,
		KmsgPath:    *kmsgPath,
		Level:       level,
		Before:      *before,
		After:       *after,
		Rate:        *rate,
		Burst:       *burst,
		QueueLines:  *queue,
		Logger:      logger,
		Ready: func(shipped int, err error) {
			status := fmt.Sprintf("%d saved kernel log records shipped", shipped)
			if err != nil && !errors.Is(err, context.Canceled) {
				status = fmt.Sprintf("saved kernel log records not all shipped: %v", err)
			}
			if !*once {
				status += "; following " + *kmsgPath
			}
			notify.ready(status)
		},
	}
	d, err := kmsgdump.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: %v\n", err)
		return 1
	}
	defer d.Close()

	if *once {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		n, err := d.ShipSaved(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("the host did not take the records within %v; the rest ships on the next run: %w", *timeout, err)
			}
			fmt.Fprintf(stderr, "vmware-kmsgdump: %v\n", err)
			return 1
		}
		logger.Info("saved kernel logs shipped", "records", n)
		return 0
	}

	// Never hold boot up for an unreachable host.
	readyTimer := time.AfterFunc(*readyTimeout, func() {
		notify.ready("the host has not taken the saved kernel log records yet; still trying")
	})
	defer readyTimer.Stop()
	err = d.Run(ctx)
	notify.stopping()
	if err != nil {
		fmt.Fprintf(stderr, "vmware-kmsgdump: %v\n", err)
		return 1
	}
	return 0
}

// notifier reports to systemd through the systemd package: READY=1 once
// (later calls only update STATUS), then STOPPING=1. Outside systemd (a
// nil *systemd.Notifier) it does nothing.
type notifier struct {
	sd     *systemd.Notifier
	logger *slog.Logger

	mu      sync.Mutex
	isReady bool
}

func (n *notifier) ready(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if n.isReady {
		err = n.sd.Status(status)
	} else {
		n.isReady = true
		err = n.sd.Ready(status)
	}
	if err != nil {
		n.logger.Debug("sd_notify failed", "err", err)
	}
}

func (n *notifier) stopping() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.sd.Stopping(); err != nil {
		n.logger.Debug("sd_notify failed", "err", err)
	}
}
