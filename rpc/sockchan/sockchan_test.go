package sockchan

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc/datamap"
)

func TestSendReceivePing(t *testing.T) {
	a, b := net.Pipe()
	guest, host := New(a), New(b)
	guest.FastClose = true
	defer guest.Close()
	defer host.Close()
	ctx := t.Context()
	go func() {
		guest.Ping(ctx)
		guest.Send(ctx, []byte("log x"))
	}()
	// The host end skips the PING and returns the DATA payload.
	got, err := host.Receive(ctx)
	if err != nil || string(got) != "log x" {
		t.Fatalf("Receive = %q, %v", got, err)
	}
	// FAST_CLOSE travels on the wire.
	go guest.Send(ctx, []byte("y"))
	content, err := datamap.ReadFrame(b, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := datamap.DecodePacket(content); !p.FastClose {
		t.Fatal("FAST_CLOSE not set")
	}
}

// TestReceiveHonoursContext runs in a synctest bubble: the cancel fires
// once Receive is durably blocked on the pipe, and the 20 ms deadline
// passes in the bubble's time, not the machine's.
func TestReceiveHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := New(a)
		defer c.Close()
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if _, err := c.Receive(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel: %v", err)
		}
		// The channel stays usable after a cancelled receive.
		go New(b).Send(t.Context(), []byte("after"))
		got, err := c.Receive(t.Context())
		if err != nil || string(got) != "after" {
			t.Fatalf("after cancel: %q %v", got, err)
		}
		dctx, dcancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer dcancel()
		if _, err := c.Receive(dctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline: %v", err)
		}
	})
}

func TestReceiveLimitsAndGarbage(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := New(a)
	c.MaxReceive = 16
	defer c.Close()
	go b.Write(datamap.AppendFrame(nil, make([]byte, 17)))
	if _, err := c.Receive(t.Context()); !errors.Is(err, datamap.ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	a2, b2 := net.Pipe()
	defer b2.Close()
	c2 := New(a2)
	defer c2.Close()
	go b2.Write(datamap.AppendFrame(nil, []byte{0, 0, 0, 9, 0, 0, 0, 1}))
	if _, err := c2.Receive(t.Context()); !errors.Is(err, datamap.ErrUnknownType) {
		t.Fatalf("garbage: %v", err)
	}
}
