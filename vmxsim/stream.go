package vmxsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/vmxsim/tclo"
)

// ServeRPCIConn answers RPCI requests on a DataMap stream (a vsock
// connection to port 976, or vmxsim's rpci.sock) until the guest closes it,
// asks for FAST_CLOSE, or sends something the VMX would not accept: a frame
// over 64 KiB, a malformed packet or a truncated one, each of which closes
// the connection with a logged reason. The connection is closed on return.
func (c *Core) ServeRPCIConn(ctx context.Context, conn net.Conn, caller Caller) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		content, err := datamap.ReadFrame(conn, datamap.MaxGuestFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				c.refuse("rpci", err)
			}
			return
		}
		p, err := datamap.DecodePacket(content)
		if err != nil {
			c.refuse("rpci", err)
			return
		}
		if p.Type == datamap.PacketPing {
			continue
		}
		if len(p.Payload) > MaxGuestMessage {
			c.refuse("rpci", fmt.Errorf("message of %d bytes exceeds 64 KiB", len(p.Payload)))
			return
		}
		reply := c.RPCI(ctx, caller, p.Payload)
		frame := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: reply, HasPayload: true}))
		if _, err := conn.Write(frame); err != nil {
			return
		}
		if p.FastClose {
			return
		}
	}
}

// refuse logs why a guest connection is being dropped, to the simulator's
// logger and to vmware.log, where a person debugging the guest looks.
func (c *Core) refuse(channel string, err error) {
	c.lg.Warn("closing guest connection", "channel", channel, "reason", err)
	c.log.Host("GuestRPC: closing %s connection: %v", channel, err)
}

// ServeTCLOConn drives the TCLO protocol on a DataMap stream (a vsock
// connection to port 975, or vmxsim's tclo.sock): the host sends commands,
// the guest answers each with a DATA packet and sends PING packets in
// between. It returns when the session ends; the connection is closed.
func (c *Core) ServeTCLOConn(ctx context.Context, conn net.Conn) error {
	return c.serveTCLOConn(ctx, conn, "unix")
}

// serveTCLOConn is ServeTCLOConn, counted for transport.
func (c *Core) serveTCLOConn(ctx context.Context, conn net.Conn, transport string) error {
	c.count(transport, func(st *TransportStats) { st.TCLO++ })
	p := tclo.NewStreamPeer(conn, func(err error) { c.refuse("tclo", err) })
	err := c.tclo.Serve(ctx, p)
	p.Close()
	p.Wait()
	return err
}
