package sockchan

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Why TCLO's socket is quiet. An idle VMX pings once a second, and each
// ping cost an idle vmtoolsd about ten wake-ups (measured over unix:DIR
// and under the vsock trap), of which two kinds are the socket's:
//
//   - A system call made through the syscall package tells the scheduler
//     it is entering the kernel, and when every P is idle that wakes
//     sysmon out of its long sleep; sysmon then naps 20 µs at a time until
//     the P is idle again: 5-6 wake-ups a second. Raw system calls are not
//     seen by the scheduler.
//   - The runtime's poller watches every socket for writability too
//     (EPOLLOUT, edge-triggered), and the kernel signals a socket writable
//     each time the peer consumes what it wrote: the VMX's reading the
//     reply woke the guest's poller once more, a moment after it had gone
//     back to sleep.
//
// A quiet conn therefore takes the socket out of the runtime's poller: it
// keeps a duplicate of the descriptor in a private epoll instance that
// watches it for input only, and puts that epoll descriptor (readable
// exactly when the socket is) in the runtime's poller instead. Reads and
// writes are raw system calls on the non-blocking socket; a read that
// finds nothing parks the goroutine on the epoll descriptor, so the one
// wake-up left per ping is the ping's own. Read deadlines are the epoll
// descriptor's. A write that finds the socket buffer full (never for
// TCLO's small replies) waits in poll(2), which the scheduler does see.

// writeSlice bounds one poll(2) of a full socket, so that Close and the
// write deadline are noticed within it.
const writeSlice = 50 * time.Millisecond

type quietConn struct {
	mu     sync.RWMutex // held for reading around each use of fd; Close takes it
	fd     int          // the socket, non-blocking, outside the runtime's poller
	ep     *os.File     // the private epoll instance, in the runtime's poller
	rc     syscall.RawConn
	br     *bufio.Reader
	closed atomic.Bool
	wdl    atomic.Int64 // write deadline, unix nanoseconds; 0 for none

	local, remote net.Addr
}

// Quiet returns a conn equivalent to c whose reads and writes neither
// wake sysmon nor let the peer's reads wake the runtime's poller (see
// above). c is closed: the returned conn owns the socket. A conn without
// a file descriptor is an error, and c is then left as it was.
func Quiet(c net.Conn) (net.Conn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("sockchan: %T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("sockchan: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("sockchan: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("sockchan: dup: %w", dupErr)
	}
	q, err := newQuiet(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	q.local, q.remote = c.LocalAddr(), c.RemoteAddr()
	c.Close() // the duplicate keeps the socket open
	return q, nil
}

func newQuiet(fd int) (*quietConn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("sockchan: %w", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sockchan: epoll_create1: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("sockchan: epoll_ctl: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("sockchan: %w", err)
	}
	ep := os.NewFile(uintptr(epfd), "tclo-epoll")
	// Deadlines work only on files the runtime's poller took, and a
	// RawConn.Read on any other would spin: this is the check.
	if err := ep.SetReadDeadline(time.Time{}); err != nil {
		ep.Close()
		return nil, fmt.Errorf("sockchan: epoll descriptor is not pollable: %w", err)
	}
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("sockchan: %w", err)
	}
	q := &quietConn{fd: fd, ep: ep, rc: rc}
	q.br = bufio.NewReaderSize(quietReader{q}, 4096)
	return q, nil
}

// Read reads buffered input, a frame's header and body with one system
// call. One goroutine at a time may read.
func (q *quietConn) Read(p []byte) (int, error) { return q.br.Read(p) }

type quietReader struct{ q *quietConn }

func (r quietReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	q := r.q
	var n int
	var err error
	rerr := q.rc.Read(func(uintptr) bool {
		q.mu.RLock()
		defer q.mu.RUnlock()
		if q.closed.Load() {
			err = net.ErrClosed
			return true
		}
		for {
			m, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(q.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch errno {
			case 0:
				if n = int(m); n == 0 {
					err = io.EOF
				}
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // park until the epoll descriptor is readable
			}
			err = os.NewSyscallError("read", errno)
			return true
		}
	})
	if rerr != nil {
		if q.closed.Load() {
			return 0, net.ErrClosed
		}
		return 0, rerr
	}
	return n, err
}

// Write writes all of b.
func (q *quietConn) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		n, errno := q.rawWrite(b)
		switch errno {
		case 0:
			b = b[n:]
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if err := q.waitWritable(); err != nil {
				return total - len(b), err
			}
			continue
		case unix.EBADF:
			if q.closed.Load() {
				return total - len(b), net.ErrClosed
			}
		}
		return total - len(b), os.NewSyscallError("write", errno)
	}
	return total, nil
}

func (q *quietConn) rawWrite(b []byte) (int, syscall.Errno) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed.Load() {
		return 0, unix.EBADF
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(q.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}

// waitWritable waits in poll(2) until the socket has room, Close or the
// write deadline.
func (q *quietConn) waitWritable() error {
	for {
		if q.closed.Load() {
			return net.ErrClosed
		}
		wait := writeSlice
		if dl := q.wdl.Load(); dl != 0 {
			left := time.Until(time.Unix(0, dl))
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			wait = min(wait, left+time.Millisecond)
		}
		q.mu.RLock()
		fds := []unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLOUT}}
		_, err := unix.Poll(fds, int(max(wait, time.Millisecond)/time.Millisecond))
		q.mu.RUnlock()
		if err != nil && err != unix.EINTR {
			return os.NewSyscallError("poll", err)
		}
		if fds[0].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) != 0 {
			return nil // the write says which
		}
	}
}

// Close closes the socket and the epoll descriptor; a parked Read
// returns net.ErrClosed.
func (q *quietConn) Close() error {
	if q.closed.Swap(true) {
		return net.ErrClosed
	}
	err := q.ep.Close() // wakes a parked Read
	q.mu.Lock()
	if cerr := unix.Close(q.fd); err == nil {
		err = cerr
	}
	q.mu.Unlock()
	return err
}

func (q *quietConn) LocalAddr() net.Addr  { return q.local }
func (q *quietConn) RemoteAddr() net.Addr { return q.remote }

func (q *quietConn) SetDeadline(t time.Time) error {
	q.SetWriteDeadline(t)
	return q.SetReadDeadline(t)
}

func (q *quietConn) SetReadDeadline(t time.Time) error { return q.ep.SetReadDeadline(t) }

func (q *quietConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		q.wdl.Store(0)
	} else {
		q.wdl.Store(t.UnixNano())
	}
	return nil
}
