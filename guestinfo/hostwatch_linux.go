package guestinfo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HostWatch tells when what guest info reads outside netlink may have
// changed, without polling: the host name (poll(2) on
// /proc/sys/kernel/hostname, which the kernel wakes on every
// sethostname), os-release (an upgrade) and the DNS configuration
// (resolv.conf, systemd-resolved's upstream list), through inotify on
// their directories. Paths are under Sys's Root.
type HostWatch struct {
	Sys *System
}

// hostWatchFiles are the names whose changes matter, by directory.
var hostWatchFiles = map[string][]string{
	"/etc":                 {"os-release", "resolv.conf", "hostname"},
	"/usr/lib":             {"os-release"},
	"/run/systemd/resolve": {"resolv.conf", "stub-resolv.conf"},
}

// Watch calls changed after each change until ctx ends, and returns nil
// then. If either source cannot be watched it returns the error (after
// stopping the other), so the caller can fall back to polling.
func (w *HostWatch) Watch(ctx context.Context, changed func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errs := make(chan error, 2)
	wg.Go(func() { errs <- w.watchHostname(ctx, changed) })
	wg.Go(func() { errs <- w.watchFiles(ctx, changed) })
	select {
	case err := <-errs:
		return err // nil only when ctx ended
	case <-ctx.Done():
		return nil
	}
}

// watchHostname waits in poll(2) for POLLPRI on the hostname sysctl (a
// blocked thread costs no wake-ups); an eventfd ends the wait.
func (w *HostWatch) watchHostname(ctx context.Context, changed func()) error {
	// A raw descriptor: os.Open would register it with the runtime's
	// epoll, whose polling consumes the sysctl's change event.
	fd, err := unix.Open(w.Sys.path("/proc/sys/kernel/hostname"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("guestinfo: hostname watch: %w", err)
	}
	defer unix.Close(fd)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("guestinfo: hostname watch: eventfd: %w", err)
	}
	defer unix.Close(efd)
	stop := context.AfterFunc(ctx, func() { unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	defer stop()
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}, {Fd: int32(efd), Events: unix.POLLIN}}
		_, err := unix.Poll(fds, -1)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("guestinfo: hostname watch: poll: %w", err)
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			changed()
		}
		if fds[0].Revents&unix.POLLNVAL != 0 {
			return errors.New("guestinfo: hostname watch: the sysctl cannot be polled")
		}
	}
}

// watchFiles watches the directories of hostWatchFiles with inotify and
// calls changed for events on the names that matter.
func (w *HostWatch) watchFiles(ctx context.Context, changed func()) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("guestinfo: inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: Read parks in the runtime poller
	defer f.Close()
	const mask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE | unix.IN_ATTRIB
	names := map[int32]map[string]bool{}
	for dir, files := range hostWatchFiles {
		wd, err := unix.InotifyAddWatch(fd, w.Sys.path(dir), mask)
		if err != nil {
			continue // absent here (no systemd-resolved, say)
		}
		set := map[string]bool{}
		for _, n := range files {
			set[n] = true
		}
		names[int32(wd)] = set
	}
	if len(names) == 0 {
		return errors.New("guestinfo: none of /etc, /usr/lib, /run/systemd/resolve can be watched")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("guestinfo: inotify: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 16<<10)
	for {
		n, err := rawRead(rc, buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("guestinfo: inotify read: %w", err)
		}
		hit := false
		inotifyEvents(buf[:n], func(wd int32, evMask uint32, name string) {
			if names[wd][name] || evMask&unix.IN_Q_OVERFLOW != 0 {
				hit = true
			}
		})
		if hit {
			changed()
		}
	}
}

// inotifyEvents calls fn for each whole event in buf, what a read of an
// inotify descriptor returned: struct inotify_event (wd, mask, cookie,
// len) followed by len bytes of NUL-padded name. A length that runs past
// the buffer ends the walk.
func inotifyEvents(buf []byte, fn func(wd int32, mask uint32, name string)) {
	for b := buf; len(b) >= unix.SizeofInotifyEvent; {
		nameLen := uint64(binary.NativeEndian.Uint32(b[12:16]))
		if nameLen > uint64(len(b)-unix.SizeofInotifyEvent) {
			return
		}
		end := unix.SizeofInotifyEvent + int(nameLen)
		fn(int32(binary.NativeEndian.Uint32(b[0:4])), binary.NativeEndian.Uint32(b[4:8]), cString(b[unix.SizeofInotifyEvent:end]))
		b = b[end:]
	}
}

// rawRead reads into p with a raw system call, parking in the runtime's
// poller while there is nothing to read. A read through os.File tells the
// scheduler it enters the kernel, which wakes sysmon from its idle sleep
// for a few 20 µs naps: on a machine whose /etc changes often (users
// added, resolv.conf rewritten) that was most of an idle vmtoolsd's
// wake-ups.
func rawRead(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // park until readable
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("read", errno)
	}
	return n, nil
}
