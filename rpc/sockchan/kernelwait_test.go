//go:build unix

package sockchan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc/datamap"
	"golang.org/x/sys/unix"
)

// unixPair returns the two ends of a connected unix stream socket pair:
// real sockets, as WaitInKernel needs a file descriptor to poll.
func unixPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// whenPolling makes f run (once, in its own goroutine) as soon as a
// receive waits in poll(2), and restores the hook after the test.
func whenPolling(t *testing.T, f func()) {
	var once sync.Once
	beforePoll = func() { once.Do(func() { go f() }) }
	t.Cleanup(func() { beforePoll = func() {} })
}

// waitCtx bounds a receive the hook should end: a receive that never
// waits in poll(2) fails with DeadlineExceeded instead of hanging.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestWaitInKernel: a receive waiting in poll(2) gets the packet sent
// after it began waiting, ends with the context's error when the context
// is cancelled or its deadline passes, and with an error when the
// channel is closed or the host hangs up; after a cancelled receive the
// channel still works.
func TestWaitInKernel(t *testing.T) {
	if _, ok := any(&net.UnixConn{}).(syscall.Conn); !ok {
		t.Fatal("net.UnixConn is not a syscall.Conn")
	}
	t.Run("reply", func(t *testing.T) {
		a, b := unixPair(t)
		guest, host := New(a), New(b)
		guest.WaitInKernel = true
		defer guest.Close()
		defer host.Close()
		whenPolling(t, func() { host.Send(context.Background(), []byte("1 reply")) })
		got, err := guest.Receive(waitCtx(t))
		if err != nil || string(got) != "1 reply" {
			t.Fatalf("Receive = %q, %v", got, err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		a, b := unixPair(t)
		guest, host := New(a), New(b)
		guest.WaitInKernel = true
		defer guest.Close()
		defer host.Close()
		ctx, cancel := context.WithCancel(t.Context())
		whenPolling(t, cancel)
		if _, err := guest.Receive(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled receive: %v", err)
		}
		beforePoll = func() {}
		go host.Send(context.Background(), []byte("after"))
		if got, err := guest.Receive(t.Context()); err != nil || string(got) != "after" {
			t.Fatalf("after cancel: %q %v", got, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		a, b := unixPair(t)
		guest := New(a)
		guest.WaitInKernel = true
		defer guest.Close()
		defer b.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 1)
		defer cancel()
		if _, err := guest.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("receive past its deadline: %v", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		a, b := unixPair(t)
		guest := New(a)
		guest.WaitInKernel = true
		defer b.Close()
		whenPolling(t, func() { guest.Close() })
		if _, err := guest.Receive(waitCtx(t)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("receive on a closed channel: %v", err)
		}
	})
	// Sends fill the socket until one waits in poll(2) for room: the
	// host then reads them all, in order and whole.
	t.Run("send waits for room", func(t *testing.T) {
		a, b := unixPair(t)
		guest := New(a)
		guest.WaitInKernel = true
		defer guest.Close()
		defer b.Close()
		const n = 64
		got := make(chan error, 1)
		whenPolling(t, func() {
			for i := range n {
				content, err := datamap.ReadFrame(b, datamap.MaxGuestFrame)
				if err == nil {
					var p datamap.Packet
					p, err = datamap.DecodePacket(content)
					if err == nil && (len(p.Payload) != datamap.MaxGuestMessage || p.Payload[0] != byte(i)) {
						err = fmt.Errorf("message %d: %d bytes starting %d", i, len(p.Payload), p.Payload[0])
					}
				}
				if err != nil {
					got <- err
					return
				}
			}
			got <- nil
		})
		msg := make([]byte, datamap.MaxGuestMessage)
		ctx := waitCtx(t)
		for i := range n {
			msg[0] = byte(i)
			if err := guest.Send(ctx, msg); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("send cancel", func(t *testing.T) {
		a, b := unixPair(t)
		guest := New(a)
		guest.WaitInKernel = true
		defer guest.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(waitCtx(t))
		whenPolling(t, cancel)
		msg := make([]byte, datamap.MaxGuestMessage)
		var err error
		for i := 0; err == nil && i < 1000; i++ {
			err = guest.Send(ctx, msg)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("send to a full socket, cancelled: %v", err)
		}
	})
	t.Run("hangup", func(t *testing.T) {
		a, b := unixPair(t)
		guest := New(a)
		guest.WaitInKernel = true
		defer guest.Close()
		whenPolling(t, func() { b.Close() })
		if _, err := guest.Receive(waitCtx(t)); !errors.Is(err, io.EOF) {
			t.Fatalf("receive after the host hung up: %v", err)
		}
	})
}
