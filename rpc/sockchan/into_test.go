package sockchan

import (
	"bytes"
	"context"
	"testing"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// recordConn is a net.Conn that keeps what is written to it.
type recordConn struct {
	streamConn
	w bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// TestReceiveInto: a reply that fits is read into the caller's buffer
// (after a heartbeat, which is skipped), one that does not into a new
// one, and the framing is the same as Receive's.
func TestReceiveInto(t *testing.T) {
	reply := datamap.Packet{Type: datamap.PacketData, Payload: []byte("1 reply")}
	stream := datamap.AppendPacketFrame(nil, datamap.Packet{Type: datamap.PacketPing})
	stream = datamap.AppendPacketFrame(stream, reply)
	stream = datamap.AppendPacketFrame(stream, reply)
	c := New(&streamConn{r: bytes.NewReader(stream)})
	buf := make([]byte, 64)
	got, err := c.ReceiveInto(t.Context(), buf)
	if err != nil || string(got) != "1 reply" {
		t.Fatalf("ReceiveInto = %q, %v", got, err)
	}
	if !inside(got, buf) {
		t.Fatal("payload does not alias the buffer")
	}
	small := make([]byte, 8)
	got, err = c.ReceiveInto(t.Context(), small)
	if err != nil || string(got) != "1 reply" || inside(got, small) {
		t.Fatalf("too small a buffer: %q, %v", got, err)
	}
}

// inside reports whether p lies within buf's memory.
func inside(p, buf []byte) bool {
	if len(p) == 0 {
		return false
	}
	b := buf[:cap(buf)]
	for i := range b {
		if &b[i] == &p[0] {
			return true
		}
	}
	return false
}

// TestMessageAllocations: sending a message of the largest size and
// receiving a reply into a buffer allocate nothing once the channel has
// its write buffer.
func TestMessageAllocations(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), datamap.MaxGuestMessage)
	reply := datamap.AppendPacketFrame(nil, datamap.Packet{Type: datamap.PacketData, Payload: make([]byte, 520000)})
	rd := bytes.NewReader(reply)
	rc := &recordConn{streamConn: streamConn{r: rd}}
	c := New(rc)
	ctx := context.Background()
	buf := make([]byte, len(reply))
	if err := c.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
	want := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: msg}))
	if !bytes.Equal(rc.w.Bytes(), want) {
		t.Fatal("Send wrote another frame than the encoded packet")
	}
	allocs := testing.AllocsPerRun(20, func() {
		rc.w.Reset()
		if err := c.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		rd.Reset(reply)
		if p, err := c.ReceiveInto(ctx, buf); err != nil || len(p) != 520000 {
			t.Fatalf("ReceiveInto: %d bytes, %v", len(p), err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations per round trip", allocs)
	}
}
