package tclo

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// StreamPeer is a TCLO channel over a DataMap stream (a vsock connection
// to port 975, or vmxsim's tclo.sock): the host sends commands, the guest
// answers each with a DATA packet and sends PING packets in between.
type StreamPeer struct {
	conn    net.Conn
	refuse  func(error)
	replies chan []byte
	done    chan struct{} // closed when the reader stops
	closing chan struct{} // closed by Close
	once    sync.Once
	waiting atomic.Bool // an Exchange awaits a reply
	wmu     sync.Mutex
	wg      sync.WaitGroup
}

// NewStreamPeer starts reading conn. refuse is told why the connection is
// dropped when the guest sends something the VMX would not accept. Close
// the peer, then Wait for its reader.
func NewStreamPeer(conn net.Conn, refuse func(error)) *StreamPeer {
	p := &StreamPeer{conn: conn, refuse: refuse, replies: make(chan []byte), done: make(chan struct{}), closing: make(chan struct{})}
	p.wg.Go(p.read)
	return p
}

func (p *StreamPeer) read() {
	defer close(p.done)
	for {
		content, err := datamap.ReadFrame(p.conn, datamap.MaxGuestFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.refuse(err)
			}
			p.conn.Close()
			return
		}
		pkt, err := datamap.DecodePacket(content)
		if err != nil {
			p.refuse(err)
			p.conn.Close()
			return
		}
		if pkt.Type == datamap.PacketPing {
			continue // the guest's heartbeat; pings answered are what count
		}
		if !p.waiting.Load() {
			p.refuse(errors.New("DATA packet with no command outstanding"))
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

// Exchange implements vmx.TCLOPeer.
func (p *StreamPeer) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
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

// Done implements vmx.TCLOPeer.
func (p *StreamPeer) Done() <-chan struct{} { return p.done }

// Close implements vmx.TCLOPeer: it closes the connection.
func (p *StreamPeer) Close() error {
	p.once.Do(func() { close(p.closing) })
	return p.conn.Close()
}

// Wait waits for the reader to stop (after Close, or the guest's end).
func (p *StreamPeer) Wait() { p.wg.Wait() }
