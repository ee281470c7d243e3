package sockchan

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc/datamap"
	"golang.org/x/sys/unix"
)

// TestQuiet runs a channel over a quiet conn over a real socket pair: frames that
// arrive in one read are returned one per Receive (the reader buffers),
// SendPing puts a PING and a DATA frame on the wire in that order, a
// write larger than the socket buffer waits for the peer, and a parked
// Receive ends with the context, with Close and when the peer hangs up.
func TestQuiet(t *testing.T) {
	raw := func(c net.Conn) *Conn {
		q, err := Quiet(c)
		if err != nil {
			t.Fatal(err)
		}
		return New(q)
	}
	t.Run("frames", func(t *testing.T) {
		a, b := unixPair(t)
		guest := raw(a)
		defer guest.Close()
		defer b.Close()
		var burst []byte
		for _, p := range []datamap.Packet{
			{Type: datamap.PacketData, Payload: []byte("ping"), HasPayload: true},
			{Type: datamap.PacketPing},
			{Type: datamap.PacketData, Payload: []byte("Set_Option x 1"), HasPayload: true},
		} {
			burst = datamap.AppendFrame(burst, datamap.EncodePacket(p))
		}
		if _, err := b.Write(burst); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ping", "Set_Option x 1"} {
			got, err := guest.Receive(waitCtx(t))
			if err != nil || string(got) != want {
				t.Fatalf("Receive = %q, %v; want %q", got, err, want)
			}
		}
	})
	t.Run("send ping", func(t *testing.T) {
		a, b := unixPair(t)
		guest := raw(a)
		defer guest.Close()
		defer b.Close()
		if err := guest.SendPing(t.Context(), []byte("OK ")); err != nil {
			t.Fatal(err)
		}
		var types []uint32
		var payload []byte
		for range 2 {
			content, err := datamap.ReadFrame(b, datamap.MaxGuestFrame)
			if err != nil {
				t.Fatal(err)
			}
			p, err := datamap.DecodePacket(content)
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, uint32(p.Type))
			if p.Type == datamap.PacketData {
				payload = p.Payload
			}
		}
		if types[0] != uint32(datamap.PacketPing) || types[1] != uint32(datamap.PacketData) || string(payload) != "OK " {
			t.Fatalf("packet types %v, payload %q; want PING then DATA \"OK \"", types, payload)
		}
	})
	t.Run("input only", func(t *testing.T) {
		// The descriptor the runtime's poller watches becomes readable
		// when the host writes, and not when the host reads what the
		// guest wrote (the socket turning writable), which would wake
		// the guest's poller a second time per exchange.
		a, b := unixPair(t)
		q, err := Quiet(a)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		defer b.Close()
		ready := func() bool {
			var revents int16
			q.(*quietConn).rc.Control(func(fd uintptr) {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT}}
				unix.Poll(fds, 0)
				revents = fds[0].Revents
			})
			return revents != 0
		}
		if _, err := q.Write([]byte("reply")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		if n, err := b.Read(buf); err != nil || string(buf[:n]) != "reply" {
			t.Fatalf("host read %q, %v", buf[:n], err)
		}
		if ready() {
			t.Fatal("the poller's descriptor is ready after the host read the guest's write")
		}
		if _, err := b.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if !ready() {
			t.Fatal("the poller's descriptor is not ready with input waiting")
		}
	})
	t.Run("large write", func(t *testing.T) {
		a, b := unixPair(t)
		guest, host := raw(a), New(b)
		defer guest.Close()
		defer host.Close()
		big := bytes.Repeat([]byte("x"), 4<<20) // over any socket buffer
		errc := make(chan error, 1)
		go func() { errc <- guest.Send(context.Background(), big) }()
		got, err := host.Receive(waitCtx(t))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("Receive of a %d-byte message: %d bytes, %v", len(big), len(got), err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		a, b := unixPair(t)
		guest, host := raw(a), New(b)
		defer guest.Close()
		defer host.Close()
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if _, err := guest.Receive(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled receive: %v", err)
		}
		go host.Send(context.Background(), []byte("after"))
		if got, err := guest.Receive(waitCtx(t)); err != nil || string(got) != "after" {
			t.Fatalf("after cancel: %q %v", got, err)
		}
	})
	t.Run("close", func(t *testing.T) {
		a, b := unixPair(t)
		guest := raw(a)
		defer b.Close()
		go func() { time.Sleep(20 * time.Millisecond); guest.Close() }()
		if _, err := guest.Receive(waitCtx(t)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("receive on a closed channel: %v", err)
		}
	})
	t.Run("hangup", func(t *testing.T) {
		a, b := unixPair(t)
		guest := raw(a)
		defer guest.Close()
		go func() { time.Sleep(20 * time.Millisecond); b.Close() }()
		if _, err := guest.Receive(waitCtx(t)); !errors.Is(err, io.EOF) {
			t.Fatalf("receive after the host hung up: %v", err)
		}
	})
}
