package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/fusefs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/hanwen/go-fuse/v2/fs"
)

// serve mounts and serves until unmounted, or until ctx ends (a signal)
// and the unmount succeeds.
func serve(ctx context.Context, a args, stderr io.Writer) int {
	ready := readyPipe()
	level := slog.LevelInfo
	if a.debug {
		level = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, level)
	if stop, err := cpuProfile(os.Getenv(envCPUProfile)); err != nil {
		logger.Warn("no CPU profile", "err", err)
	} else {
		defer stop()
	}
	m, err := mount(ctx, a, logger)
	if err != nil {
		if ready != nil {
			fmt.Fprintln(ready, err)
			ready.Close()
		}
		fmt.Fprintln(stderr, "vmhgfs-fuse:", err)
		return 1
	}
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}
	m.wait(ctx)
	return 0
}

// envCPUProfile names a file the daemon writes a CPU profile of its
// whole run to (go tool pprof), for measuring the guest CPU each request
// costs; it is a debugging aid, not a mount option.
const envCPUProfile = "GOVMTOOLS_HGFS_CPUPROFILE"

// cpuProfile starts a CPU profile into path ("" is none) and returns
// what stops it.
func cpuProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// readyPipe is the descriptor a background child reports on, or nil in
// the foreground.
func readyPipe() *os.File {
	if os.Getenv(envReadyFD) == "" {
		return nil
	}
	os.Unsetenv(envReadyFD)
	return os.NewFile(3, "ready")
}

// mounted is a served mount.
type mounted struct {
	a      args
	client *hgfs.Client
	root   fs.InodeEmbedder
	server interface {
		Wait()
		Unmount() error
	}
	logger *slog.Logger
}

// mount reaches the host's HGFS server, checks the source and mounts it.
func mount(ctx context.Context, a args, logger *slog.Logger) (*mounted, error) {
	opts := fusefs.DefaultOptions()
	opts.Debug = a.debug
	if err := opts.Parse(a.opts...); err != nil {
		return nil, err
	}
	base, err := basePath(a.source)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(a.mountpoint); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("mount point %s is not a directory", a.mountpoint)
	}
	c, err := connect(ctx, a, base, logger)
	if err != nil {
		return nil, err
	}
	opts.Mountpoint = a.mountpoint
	root, fopts := fusefs.New(c, base, opts, logger)
	server, err := fs.Mount(a.mountpoint, root, fopts)
	if err != nil {
		c.Close(context.Background())
		return nil, fmt.Errorf("mount %s: %w", a.mountpoint, err)
	}
	fusefs.ApplyReadahead(root) // the error is logged once
	sz := c.Sizes()
	logger.Info("mounted", "source", a.source, "mountpoint", a.mountpoint, "maxPacket", sz.MaxPacket, "maxRead", sz.MaxRead, "maxWrite", sz.MaxWrite)
	return &mounted{a: a, client: c, root: root, server: server, logger: logger}, nil
}

// connect opens the HGFS session and checks that the source is a
// directory on the host.
func connect(ctx context.Context, a args, base string, logger *slog.Logger) (*hgfs.Client, error) {
	tr, err := cmdutil.Transport(a.rpc, logger)
	if err != nil {
		return nil, err
	}
	channels := a.channels
	if channels == 0 {
		channels = hgfs.DefaultChannels
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rt := hgfs.NewRPCTransport(tr.DialRPCI, channels, logger)
	c, err := hgfs.New(ctx, hgfs.Config{Transport: rt, Logger: logger})
	if err != nil {
		if errors.Is(err, hgfs.ErrDisabled) {
			return nil, fmt.Errorf("%w; enable Shared Folders in the VM's settings", err)
		}
		return nil, err
	}
	if os.Getenv("GOMAXPROCS") == "" && rt.HoldsCPU() {
		// Over the backdoor a request holds its thread until the host
		// answers, and that thread is in user code, so Go's scheduler
		// sees a running goroutine and lets it keep its processor (P).
		// With no P to spare, a FUSE reader go-fuse starts, a returning
		// read of /dev/fuse or another channel's request waits until a
		// call ends or sysmon steps in. make bench under the trap on a
		// 2-CPU machine, GOMAXPROCS=2 against this: create 10,000 files
		// 5.6 s against 5.0 s, tar extract 3.2 s against 2.7 s, 256 MiB
		// write 185 MB/s against 245 MB/s. Over vsock and unix sockets a
		// request waits in the kernel and gives its P back, and the extra
		// Ps only spin: the first stat of 10,000 paths over unix: cost
		// 48-51 ticks of daemon CPU with them against 40-42 without.
		runtime.GOMAXPROCS(runtime.NumCPU() + channels)
	}
	attr, _, err := c.Getattr(ctx, base)
	if err == nil && attr.Type != hgfsproto.FileTypeDirectory {
		err = fmt.Errorf("%s is not a directory on the host", a.source)
	}
	if err != nil {
		c.Close(context.Background())
		return nil, fmt.Errorf("%s: %w", a.source, err)
	}
	return c, nil
}

// wait serves until the mount goes away. When ctx ends, and at every
// later SIGINT, SIGTERM or SIGHUP, it unmounts (which fails while the
// mount is busy); SIGUSR1 logs the HGFS round trips.
func (m *mounted) wait(ctx context.Context) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	again := make(chan os.Signal, 1)
	defer signal.Stop(again)
	done := make(chan struct{})
	go func() { m.server.Wait(); close(done) }()
	stop := ctx.Done()
	for {
		select {
		case <-done:
			fusefs.Stop(m.root)
			m.client.Close(context.Background())
			m.logger.Info("unmounted", "mountpoint", m.a.mountpoint)
			return
		case <-usr1:
			var b strings.Builder
			hgfs.WriteStats(&b, m.client.Stats())
			m.logger.Info("hgfs round trips\n" + b.String())
		case <-stop:
			stop = nil // closed for good; later signals come on again
			signal.Notify(again, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			m.unmount()
		case <-again:
			m.unmount()
		}
	}
}

func (m *mounted) unmount() {
	if err := m.server.Unmount(); err != nil {
		m.logger.Warn("unmount failed; the mount is busy", "err", err)
	}
}
