//go:build unix

package sockchan

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Why a reply is waited for in the kernel: a goroutine parked in Go's
// network poller is made runnable by whichever thread next polls, and
// then waits for a processor, so with a few RPCI channels in flight at
// once (vmhgfs-fuse's four, with the kernel's RELEASE beside the next
// CREATE) each reply cost hundreds of microseconds more than the round
// trip itself: over vsock under `vmxsim run`, create 10,000 files took
// 16.1 s at 0.56 ms per round trip with four channels against 3.3 s at
// 0.13 ms with one (docs/benchmarks.md). A thread blocked in poll(2) on
// the socket is woken by the kernel itself when the reply arrives.

// pollSlice bounds one blocking poll, so that a cancelled context or a
// Close is noticed within it.
const pollSlice = 50 * time.Millisecond

// A request is written the same way, in a write(2) that waits for room
// in poll(2) if the socket is full: no deadline has to be armed and
// cleared on the connection around it, which cost each message two
// timer changes in Go's runtime and an allocation.

// beforePoll runs before each blocking poll; tests use it to act once a
// receive (or a send) waits in poll(2).
var beforePoll = func() {}

// kernelConn does the reads and writes of a conn in system calls that
// wait in poll(2) and honour a context, for one reader or writer at a
// time (Conn keeps one for receives and one for sends).
type kernelConn struct {
	ctx    context.Context
	rc     syscall.RawConn
	closed *atomic.Bool
	none   bool // the conn has no file descriptor
	fds    [1]unix.PollFd
}

// reset makes k a reader and writer of conn bound to ctx and returns it
// as an io.ReadWriter; it returns conn itself when conn has no file
// descriptor to poll. The raw connection is looked up once per conn.
func (k *kernelConn) reset(ctx context.Context, conn net.Conn, closed *atomic.Bool) io.ReadWriter {
	if k.rc == nil && !k.none {
		sc, ok := conn.(syscall.Conn)
		var rc syscall.RawConn
		var err error
		if ok {
			rc, err = sc.SyscallConn()
		}
		if !ok || err != nil {
			k.none = true
		} else {
			k.rc = rc
		}
	}
	if k.none {
		return conn
	}
	k.ctx, k.closed = ctx, closed
	return k
}

// Read reads into p, waiting in poll(2) while there is nothing to read.
func (k *kernelConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	// RawConn.Read fails at once on a closed connection; f never
	// returns false, so the network poller is never asked to wait.
	rerr := k.rc.Read(func(fd uintptr) bool {
		n, err = k.read(int(fd), p)
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}

// Write writes all of p, waiting in poll(2) while the socket is full.
func (k *kernelConn) Write(p []byte) (int, error) {
	var n int
	var err error
	werr := k.rc.Write(func(fd uintptr) bool {
		n, err = k.write(int(fd), p)
		return true
	})
	if werr != nil {
		return n, werr
	}
	return n, err
}

// read reads fd, waiting in poll(2) while it has nothing to read.
func (k *kernelConn) read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, err
		}
		if err := k.wait(fd, unix.POLLIN); err != nil {
			return 0, err
		}
	}
}

// write writes all of p to fd, waiting in poll(2) while it is full.
func (k *kernelConn) write(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(fd, p[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == nil || err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return done, err
		}
		if err := k.wait(fd, unix.POLLOUT); err != nil {
			return done, err
		}
	}
	return done, nil
}

// wait waits in poll(2) for events on fd, for at most a slice, and
// fails when the conn was closed or the context ended.
func (k *kernelConn) wait(fd int, events int16) error {
	if k.closed.Load() {
		return net.ErrClosed
	}
	if err := k.ctx.Err(); err != nil {
		return err
	}
	wait := pollSlice
	if d, ok := k.ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)+time.Millisecond)
	}
	beforePoll()
	k.fds[0] = unix.PollFd{Fd: int32(fd), Events: events}
	if _, err := unix.Poll(k.fds[:], int(max(wait, time.Millisecond)/time.Millisecond)); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}
