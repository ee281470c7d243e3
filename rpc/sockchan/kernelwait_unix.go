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

// beforePoll runs before each blocking poll; tests use it to act once a
// receive is waiting in the kernel.
var beforePoll = func() {}

// kernelReader returns a reader of conn whose reads wait in poll(2);
// conn itself when it has no file descriptor to poll.
func kernelReader(ctx context.Context, conn net.Conn, closed *atomic.Bool) io.Reader {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return conn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return conn
	}
	return &pollReader{ctx: ctx, rc: rc, closed: closed}
}

type pollReader struct {
	ctx    context.Context
	rc     syscall.RawConn
	closed *atomic.Bool
	// first is set for the first read of a receive (setContext).
	first bool
}

// setContext starts a receive that heeds ctx (a Conn keeps one
// pollReader for all its receives).
func (r *pollReader) setContext(ctx context.Context) { r.ctx, r.first = ctx, true }

// tryWrite writes as much of b to conn as its socket takes now, in one
// write(2) that never waits, and returns how much that was; 0 when conn
// has no descriptor or the write failed (the caller's conn.Write then
// reports why).
func tryWrite(conn net.Conn, b []byte) int {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Write(func(fd uintptr) bool {
		for {
			m, err := unix.Write(int(fd), b)
			if err == unix.EINTR {
				continue
			}
			if err == nil {
				n = m
			}
			return true
		}
	})
	return n
}

func (r *pollReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	// RawConn.Read fails at once on a closed connection or after a
	// deadline (bindDeadline sets one when ctx ends); f never returns
	// false, so the network poller is never asked to wait.
	rerr := r.rc.Read(func(fd uintptr) bool {
		n, err = r.read(int(fd), p)
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	return n, err
}

// read reads fd, waiting in poll(2) while it has nothing to read.
func (r *pollReader) read(fd int, p []byte) (int, error) {
	// The first read of a receive waits in poll(2) before it reads: the
	// reply to a request just sent is rarely there yet, and a read that
	// finds nothing is a system call for nothing (one of three per round
	// trip over unix: and vsock). Later reads of the receive find data
	// more often than not (the rest of a large reply), and read first.
	first := r.first
	r.first = false
	for {
		if !first {
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
		}
		first = false
		if r.closed.Load() {
			return 0, net.ErrClosed
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		wait := pollSlice
		if d, ok := r.ctx.Deadline(); ok {
			wait = min(wait, time.Until(d)+time.Millisecond)
		}
		beforePoll()
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(max(wait, time.Millisecond)/time.Millisecond)); err != nil && err != unix.EINTR {
			return 0, err
		}
	}
}
