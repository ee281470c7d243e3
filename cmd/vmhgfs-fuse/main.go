// Command vmhgfs-fuse mounts the host's shared folders with FUSE, in
// place of open-vm-tools' vmhgfs-fuse: same command line, mount options
// and fstab lines (.host:/ /mnt/hgfs fuse.vmhgfs-fuse defaults,allow_other 0 0),
// the same "vmhgfs-fuse" source and fuse.vmhgfs-fuse type so vmtoolsd
// recognises the mount. See usage in args.go.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/govmtools/govmtools/internal/cmdutil"
)

// envReadyFD names the descriptor on which a background child reports
// "ok" or an error to the parent that started it.
const envReadyFD = "_VMHGFS_FUSE_READY_FD"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(argv []string, stdout, stderr io.Writer) int {
	a, err := parseArgs(argv)
	if err != nil {
		return cmdutil.UsageError(stderr, "vmhgfs-fuse", err.Error())
	}
	switch {
	case a.help:
		fmt.Fprint(stdout, usage)
		return 0
	case a.version:
		fmt.Fprintln(stdout, cmdutil.VersionLine("vmhgfs-fuse", ""))
		return 0
	case a.enabled:
		return enabled(stderr)
	}
	if !a.foreground && os.Getenv(envReadyFD) == "" {
		return daemonize(argv, a, stderr)
	}
	// SIGINT, SIGTERM and SIGHUP unmount (SIGUSR1 logs statistics).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return serve(ctx, a, stderr)
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
