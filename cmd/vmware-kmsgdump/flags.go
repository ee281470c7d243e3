package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/kmsgdump"
	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

// flags are the command-line flags.
type flags struct {
	rpc, pstore, crashDir, kmsg, stateDir, level, pstoreAfter, crashAfter *string
	once, follow, debug                                                   *bool
	rate                                                                  *float64
	burst, before, after, queue                                           *int
	timeout, readyTimeout                                                 *time.Duration
}

func defineFlags(fs *flag.FlagSet) *flags {
	return &flags{
		rpc:          cmdutil.RPCFlag(fs),
		pstore:       fs.String("pstore", "/sys/fs/pstore", "pstore directory whose dmesg-* records are shipped (\"\" to skip)"),
		crashDir:     fs.String("crash-dir", "/var/crash", "kdump directory whose */vmcore-dmesg.txt and */dmesg.* are shipped (\"\" to skip)"),
		kmsg:         fs.String("kmsg", "/dev/kmsg", "kernel log to follow (a FIFO or file in /dev/kmsg format also works)"),
		stateDir:     fs.String("state-dir", "/var/lib/govmtools/kmsgdump", "where shipping progress, the kmsg cursor and archived records are kept"),
		level:        fs.String("level", "warning", "least severe kernel level streamed: emerg, alert, crit, err, warning, notice, info, debug"),
		once:         fs.Bool("once", false, "ship the saved records (pstore, kdump), then exit"),
		follow:       fs.Bool("follow", false, "ship the saved records, then stream the kernel log (the default)"),
		pstoreAfter:  fs.String("pstore-after", "archive", "what to do with shipped pstore records: archive (copy to STATE-DIR/archive, then remove from pstore), remove, keep"),
		crashAfter:   fs.String("crash-after", "keep", "what to do with shipped kdump dmesg files: keep, archive, remove"),
		rate:         fs.Float64("rate", 50, "live lines per second let through to vmware.log (0: no limit)"),
		burst:        fs.Int("burst", 500, "live lines let through in a burst above --rate"),
		before:       fs.Int("context-before", 20, "records shipped before an incident (Oops, BUG:, panic, hung task, OOM, WARNING)"),
		after:        fs.Int("context-after", 100, "records shipped after an incident"),
		queue:        fs.Int("queue", 4096, "live lines held while the host is unreachable; beyond it lines are dropped and counted"),
		timeout:      fs.Duration("timeout", time.Minute, "with --once, give up after this long if the host does not answer"),
		readyTimeout: fs.Duration("ready-timeout", 10*time.Second, "with --follow, tell systemd READY=1 after this long even if the saved records are not shipped yet"),
		debug:        fs.Bool("debug", false, "log debugging detail to stderr"),
	}
}

// config checks the flags and turns them into a kmsgdump.Config (without
// the shipper, the boot, the logger and the ready callback); its errors
// are usage errors.
func (f *flags) config() (kmsgdump.Config, error) {
	if *f.once && *f.follow {
		return kmsgdump.Config{}, errors.New("--once and --follow exclude each other")
	}
	level, err := kmsg.ParseLevel(*f.level)
	if err != nil {
		return kmsgdump.Config{}, fmt.Errorf("--level: %w", err)
	}
	pAfter, err := kmsgdump.ParseDisposition(*f.pstoreAfter)
	if err != nil {
		return kmsgdump.Config{}, fmt.Errorf("--pstore-after: %w", err)
	}
	cAfter, err := kmsgdump.ParseDisposition(*f.crashAfter)
	if err != nil {
		return kmsgdump.Config{}, fmt.Errorf("--crash-after: %w", err)
	}
	return kmsgdump.Config{
		StateDir:    *f.stateDir,
		PstoreDir:   *f.pstore,
		CrashDir:    *f.crashDir,
		PstoreAfter: pAfter,
		CrashAfter:  cAfter,
		Follow:      !*f.once,
		KmsgPath:    *f.kmsg,
		Level:       level,
		Before:      *f.before,
		After:       *f.after,
		Rate:        *f.rate,
		Burst:       *f.burst,
		QueueLines:  *f.queue,
	}, nil
}
