package pollwait

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Waiter sleeps between polls, or waits for a deadline that other
// goroutines may move (Set and Wait). One goroutine at a time may call
// Sleep or Wait; Set may be called from any.
type Waiter struct {
	fd int
	f  *os.File
	rc syscall.RawConn

	// The context the last Sleep watched: its end sets a past read
	// deadline on f, which wakes a parked Sleep. Watching it across
	// sleeps spares an idle poll the registration.
	ctx   context.Context
	stop  func() bool
	fired chan struct{}

	checks int // calls of expired in this wait
}

// New returns a Waiter backed by a timerfd in the network poller.
func New() (*Waiter, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pollwait: timerfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pollwait-timerfd")
	// A file the poller refused would make RawConn.Read spin: deadlines
	// work only on pollable files, so this is the check.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("pollwait: timerfd is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pollwait: %w", err)
	}
	return &Waiter{fd: fd, f: f, rc: rc}, nil
}

// Sleep returns after d, or with ctx's error once ctx ends. It is Set
// and then Wait.
func (w *Waiter) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if err := w.Set(d); err != nil {
		return err
	}
	return w.wait(ctx, true)
}

// Set arms the timer to expire once after d, replacing any earlier
// setting and any expiry not yet waited for; d <= 0 disarms it. Unlike
// Wait, Set may be called from any goroutine while another waits: a
// heartbeat that a reply made unnecessary is pushed back without waking
// the goroutine that waits for it.
func (w *Waiter) Set(d time.Duration) error {
	if errno := w.arm(max(d, 0)); errno != 0 {
		return fmt.Errorf("pollwait: timerfd_settime: %w", errno)
	}
	return nil
}

// Wait returns once the timer set last has expired, or with ctx's error
// once ctx ends. A disarmed timer waits for ctx, or for a Set from
// another goroutine and its expiry.
func (w *Waiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.wait(ctx, false)
}

// wait parks until the timerfd has expired. justArmed says the timer was
// set by this goroutine a moment ago, so the first check may skip the
// read.
func (w *Waiter) wait(ctx context.Context, justArmed bool) error {
	w.watch(ctx)
	w.checks = 0
	if !justArmed {
		w.checks = 1
	}
	err := w.rc.Read(w.expired)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			w.arm(0)
			return ctx.Err()
		}
		return fmt.Errorf("pollwait: %w", err)
	}
	return nil
}

// watch makes the end of ctx wake a parked Sleep.
func (w *Waiter) watch(ctx context.Context) {
	if ctx == w.ctx {
		return
	}
	w.unwatch()
	fired := make(chan struct{})
	w.ctx, w.fired = ctx, fired
	w.stop = context.AfterFunc(ctx, func() {
		w.f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
}

// unwatch forgets the watched context, clearing the deadline its end set.
func (w *Waiter) unwatch() {
	if w.stop != nil && !w.stop() {
		<-w.fired
		w.f.SetReadDeadline(time.Time{})
	}
	w.ctx, w.stop, w.fired = nil, nil, nil
}

// arm sets the timer to expire once after d (0 disarms it). Setting it
// also clears any expiry not yet read. The call is raw: it never blocks,
// and a scheduler-visible system call would wake sysmon.
func (w *Waiter) arm(d time.Duration) syscall.Errno {
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	_, _, errno := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(w.fd), 0, uintptr(unsafe.Pointer(&its)), 0, 0, 0)
	return errno
}

// expired is RawConn.Read's callback: true once the timer has fired,
// false to park in the poller until the timerfd is readable. The first
// call of a Sleep comes before any wait, when the timer just armed cannot
// have fired, so it parks without a system call; later calls (and every
// call of a Wait, whose timer may have been set long ago) read the
// expiry count (non-blocking, raw), since a readiness left from before
// the timer was re-armed can wake the poller early.
func (w *Waiter) expired(fd uintptr) bool {
	w.checks++
	if w.checks == 1 {
		return false
	}
	var n uint64
	r, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&n)), 8)
	return errno == 0 && r == 8
}

// Close releases the timerfd.
func (w *Waiter) Close() error {
	w.unwatch()
	return w.f.Close()
}
