// Command vmhgfs-fuse mounts the host's shared folders with FUSE, in
// place of open-vm-tools' vmhgfs-fuse: same command line, mount options
// and fstab lines (.host:/ /mnt/hgfs fuse.vmhgfs-fuse defaults,allow_other 0 0),
// the same "vmhgfs-fuse" source and fuse.vmhgfs-fuse type so vmtoolsd
// recognises the mount. See usage in args.go.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/fusefs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/hanwen/go-fuse/v2/fs"
)

const version = "vmhgfs-fuse (govmtools) 1.0"

// envReadyFD names the descriptor on which a background child reports
// "ok" or an error to the parent that started it.
const envReadyFD = "_VMHGFS_FUSE_READY_FD"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	a, err := parseArgs(argv)
	if err != nil {
		fmt.Fprintf(stderr, "vmhgfs-fuse: %v\n%s", err, usage)
		return 2
	}
	switch {
	case a.help:
		fmt.Fprint(stdout, usage)
		return 0
	case a.version:
		fmt.Fprintln(stdout, version)
		return 0
	case a.enabled:
		return enabled(stderr)
	}
	if !a.foreground && os.Getenv(envReadyFD) == "" {
		return daemonize(argv, a, stderr)
	}
	return serve(a, stderr)
}

// enabled is -e: 0 when FUSE can be used, 2 when it cannot.
func enabled(stderr io.Writer) int {
	fsys, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(fsys), "\tfuse\n") {
		fmt.Fprintln(stderr, "vmhgfs-fuse: the kernel has no FUSE (modprobe fuse)")
		return 2
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		fmt.Fprintln(stderr, "vmhgfs-fuse: /dev/fuse is missing")
		return 2
	}
	return 0
}

// daemonize re-runs the command in the background and waits until the
// child says the mount is ready (exit 0) or why it failed (exit 1).
func daemonize(argv []string, a args, stderr io.Writer) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(stderr, "vmhgfs-fuse:", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "vmhgfs-fuse:", err)
		return 1
	}
	null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	out := null
	if a.logFile != "" {
		if f, err := os.OpenFile(a.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
			out = f
		}
	}
	p, err := os.StartProcess(exe, append([]string{"vmhgfs-fuse"}, argv...), &os.ProcAttr{
		Env:   append(os.Environ(), envReadyFD+"=3"),
		Files: []*os.File{null, out, out, w},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		fmt.Fprintln(stderr, "vmhgfs-fuse:", err)
		return 1
	}
	p.Release()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ok" {
		return 0
	}
	if line == "" {
		line = "the background process exited before the mount was ready"
	}
	fmt.Fprintln(stderr, "vmhgfs-fuse:", line)
	return 1
}

// serve mounts and serves until unmounted or signalled.
func serve(a args, stderr io.Writer) int {
	var ready *os.File
	if fd := os.Getenv(envReadyFD); fd != "" {
		ready = os.NewFile(3, "ready")
		os.Unsetenv(envReadyFD)
	}
	fail := func(err error) int {
		if ready != nil {
			fmt.Fprintln(ready, err)
			ready.Close()
		}
		fmt.Fprintln(stderr, "vmhgfs-fuse:", err)
		return 1
	}
	level := slog.LevelInfo
	if a.debug {
		level = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, level)
	opts := fusefs.DefaultOptions()
	opts.Debug = a.debug
	if err := opts.Parse(a.opts...); err != nil {
		return fail(err)
	}
	base, err := basePath(a.source)
	if err != nil {
		return fail(err)
	}
	if fi, err := os.Stat(a.mountpoint); err != nil || !fi.IsDir() {
		return fail(fmt.Errorf("mount point %s is not a directory", a.mountpoint))
	}
	tr, err := cmdutil.Transport(a.rpc, logger)
	if err != nil {
		return fail(err)
	}
	channels := a.channels
	if channels == 0 && tr.Mode().Kind == transport.Unix {
		// Over vmxsim's sockets, requests in flight together cost this
		// daemon more than they save (docs/benchmarks.md); the backdoor
		// has no such cost.
		channels = 1
	}
	if channels == 0 {
		channels = hgfs.DefaultChannels
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// A request holds its thread until the host answers, and in a
		// backdoor call that thread is in user code, so Go's scheduler
		// sees a running goroutine and lets it keep its processor (P).
		// With no P to spare, a FUSE reader go-fuse starts, a returning
		// read of /dev/fuse or another channel's request waits until a
		// call ends or sysmon steps in. make bench under the trap on a
		// 2-CPU machine, GOMAXPROCS=2 against this: create 10,000 files
		// 5.6 s against 5.0 s, tar extract 3.2 s against 2.7 s, 256 MiB
		// write 185 MB/s against 245 MB/s.
		runtime.GOMAXPROCS(runtime.NumCPU() + channels)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := hgfs.New(ctx, hgfs.Config{Transport: hgfs.NewRPCTransport(tr.DialRPCI, channels, logger), Logger: logger})
	if err != nil {
		cancel()
		if errors.Is(err, hgfs.ErrDisabled) {
			return fail(fmt.Errorf("%w; enable Shared Folders in the VM's settings", err))
		}
		return fail(err)
	}
	attr, _, err := c.Getattr(ctx, base)
	cancel()
	if err == nil && attr.Type != hgfsproto.FileTypeDirectory {
		err = fmt.Errorf("%s is not a directory on the host", a.source)
	}
	if err != nil {
		c.Close(context.Background())
		return fail(fmt.Errorf("%s: %w", a.source, err))
	}
	root, fopts := fusefs.New(c, base, opts, logger)
	server, err := fs.Mount(a.mountpoint, root, fopts)
	if err != nil {
		c.Close(context.Background())
		return fail(fmt.Errorf("mount %s: %w", a.mountpoint, err))
	}
	if err := fusefs.SetReadahead(a.mountpoint, fusefs.Readahead(opts, fopts)); err != nil {
		logger.Debug("cannot set the mount's readahead", "err", err)
	}
	sz := c.Sizes()
	logger.Info("mounted", "source", a.source, "mountpoint", a.mountpoint, "maxPacket", sz.MaxPacket, "maxRead", sz.MaxRead, "maxWrite", sz.MaxWrite)
	if ready != nil {
		fmt.Fprintln(ready, "ok")
		ready.Close()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() { server.Wait(); close(done) }()
	for {
		select {
		case <-done:
			signal.Stop(sigs)
			fusefs.Stop(root)
			c.Close(context.Background())
			logger.Info("unmounted", "mountpoint", a.mountpoint)
			return 0
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				var b strings.Builder
				hgfs.WriteStats(&b, c.Stats())
				logger.Info("hgfs round trips\n" + b.String())
				continue
			}
			if err := server.Unmount(); err != nil {
				logger.Warn("unmount failed; the mount is busy", "err", err)
			}
		}
	}
}
