package sockchan

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// streamConn is a net.Conn whose reads come from a fixed byte stream.
type streamConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }
func (c *streamConn) Close() error                     { return nil }

// FuzzReceive: whatever the peer sends, Receive returns DATA payloads no
// longer than the limit, or an error; it never panics or over-allocates.
func FuzzReceive(f *testing.F) {
	data := datamap.Packet{Type: datamap.PacketData, Payload: []byte("1 ok")}
	f.Add(datamap.AppendFrame(nil, datamap.EncodePacket(data)))
	hb := datamap.Packet{Type: datamap.PacketPing}
	f.Add(append(datamap.AppendFrame(nil, datamap.EncodePacket(hb)), datamap.AppendFrame(nil, datamap.EncodePacket(data))...))
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := New(&streamConn{r: bytes.NewReader(stream)})
		c.MaxReceive = 1 << 16
		for range 8 {
			p, err := c.Receive(t.Context())
			if err != nil {
				return
			}
			if len(p) > c.MaxReceive {
				t.Fatalf("payload of %d bytes", len(p))
			}
		}
	})
}
