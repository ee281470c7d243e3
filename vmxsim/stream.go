package vmxsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/govmtools/govmtools/rpc/datamap"
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
	p := &streamPeer{conn: conn, replies: make(chan []byte), done: make(chan struct{}), closing: make(chan struct{}), core: c}
	var wg sync.WaitGroup
	wg.Go(p.read)
	err := c.ServeTCLO(ctx, p)
	p.Close()
	wg.Wait()
	return err
}

// streamPeer is a TCLOPeer over a DataMap stream.
type streamPeer struct {
	conn    net.Conn
	core    *Core
	replies chan []byte
	done    chan struct{} // closed when the reader stops
	closing chan struct{} // closed by Close
	once    sync.Once
	waiting atomic.Bool // an Exchange awaits a reply
	wmu     sync.Mutex
}

func (p *streamPeer) read() {
	defer close(p.done)
	for {
		content, err := datamap.ReadFrame(p.conn, datamap.MaxGuestFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.core.refuse("tclo", err)
			}
			p.conn.Close()
			return
		}
		pkt, err := datamap.DecodePacket(content)
		if err != nil {
			p.core.refuse("tclo", err)
			p.conn.Close()
			return
		}
		if pkt.Type == datamap.PacketPing {
			continue // the guest's heartbeat; pings answered are what count
		}
		if !p.waiting.Load() {
			p.core.refuse("tclo", errors.New("DATA packet with no command outstanding"))
			p.conn.Close()
			return
		}
		select {
		case p.replies <- pkt.Payload:
		case <-p.closing:
			return
		}
	}
}

func (p *streamPeer) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	frame := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: cmd, HasPayload: true}))
	p.waiting.Store(true)
	defer p.waiting.Store(false)
	p.wmu.Lock()
	d, _ := ctx.Deadline()
	p.conn.SetWriteDeadline(d)
	_, err := p.conn.Write(frame)
	p.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-p.replies:
		return r, nil
	case <-p.done:
		return nil, errors.New("channel closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *streamPeer) Done() <-chan struct{} { return p.done }

func (p *streamPeer) Close() error {
	p.once.Do(func() { close(p.closing) })
	return p.conn.Close()
}
