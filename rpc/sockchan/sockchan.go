// Package sockchan is an rpc.Channel over a stream connection carrying
// DataMap packets: the framing of GuestRPC over vsock (ports 975 and 976),
// which vmxsim's unix sockets speak too. It works over any net.Conn, so it
// is tested over net.Pipe and unix sockets; it never opens a socket itself.
//
// A Conn is an rpc.EventChannel: Receive blocks until the host sends, and
// Ping sends the TCLO heartbeat packet. Receive may run concurrently with
// Send or Ping (one reader, one writer), and Close unblocks both.
package sockchan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/datamap"
)

// DefaultMaxReceive bounds a packet from the host. The protocol sets no
// host-to-guest limit, but a corrupt length must not make the guest allocate
// gigabytes; the largest real replies (HGFS) are far below this.
const DefaultMaxReceive = 16 << 20

// Conn is a GuestRPC channel over a stream.
type Conn struct {
	conn net.Conn
	// FastClose marks every DATA packet sent with FAST_CLOSE=1, which asks
	// the VMX to close the connection after replying (one-shot RPCI).
	FastClose bool
	// MaxReceive bounds received packets; 0 means DefaultMaxReceive.
	MaxReceive int
	// WaitInKernel makes Receive wait for the host's packet (and Send
	// for room in a full socket) in a blocking poll(2) of the socket
	// rather than in Go's network poller (see kernelwait_unix.go), for
	// request-reply channels (RPCI), whose reply follows the request at
	// once. Not for TCLO, whose Receive
	// waits for the host's next command for seconds. A conn that is not
	// a syscall.Conn always uses the poller.
	WaitInKernel bool

	wmu sync.Mutex // serializes writes (replies and heartbeats)
	// wbuf is the frame being written, kept between writes (under wmu)
	// so that a message costs no allocation.
	wbuf   []byte
	closed atomic.Bool // set by Close, for a receive waiting in the kernel
	// kr and kw wait in the kernel for a receive and a send (one of
	// each at a time) with WaitInKernel.
	kr, kw kernelConn
}

var (
	_ rpc.EventChannel = (*Conn)(nil)
	_ rpc.ReplyPinger  = (*Conn)(nil)
	_ rpc.IntoReceiver = (*Conn)(nil)
)

// maxKeptFrame bounds the write buffer a Conn keeps between messages:
// the largest guest message. A larger one (host to guest, in vmxsim) is
// written from a buffer of its own.
const maxKeptFrame = 4 + datamap.MaxGuestFrame

// New returns a channel over c. The channel owns c and closes it.
func New(c net.Conn) *Conn { return &Conn{conn: c} }

// Send writes msg as one DATA packet.
func (c *Conn) Send(ctx context.Context, msg []byte) error {
	return c.write(ctx, datamap.Packet{Type: datamap.PacketData, Payload: msg, HasPayload: true, FastClose: c.FastClose})
}

// Ping writes a heartbeat packet: TYPE=PING and no payload.
func (c *Conn) Ping(ctx context.Context) error {
	return c.write(ctx, datamap.Packet{Type: datamap.PacketPing})
}

// SendPing writes a heartbeat packet and msg as a DATA packet after it,
// in one write, so that a peer waiting for the reply has read all of it
// once it has the reply (a write to a net.Pipe returns only then).
func (c *Conn) SendPing(ctx context.Context, msg []byte) error {
	return c.write(ctx, datamap.Packet{Type: datamap.PacketPing}, datamap.Packet{Type: datamap.PacketData, Payload: msg, HasPayload: true, FastClose: c.FastClose})
}

// write sends ps as consecutive frames in one write(2).
func (c *Conn) write(ctx context.Context, ps ...datamap.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	size := 0
	for _, p := range ps {
		size += len(p.Payload)
	}
	if c.wbuf == nil && size <= datamap.MaxGuestMessage {
		c.wbuf = make([]byte, 0, maxKeptFrame)
	}
	frame := c.wbuf[:0]
	for _, p := range ps {
		frame = datamap.AppendPacketFrame(frame, p)
	}
	if cap(frame) <= maxKeptFrame {
		c.wbuf = frame[:0]
	}
	w, stop := c.stream(ctx, &c.kw, false)
	defer stop()
	if _, err := w.Write(frame); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}

// Receive reads packets until a DATA packet arrives and returns its
// payload. Heartbeats from the peer are skipped. A malformed packet is an
// error, after which the stream cannot be trusted and should be closed.
func (c *Conn) Receive(ctx context.Context) ([]byte, error) {
	return c.ReceiveInto(ctx, nil)
}

// ReceiveInto is Receive reading the packet into buf when it fits
// (rpc.IntoReceiver): the payload returned then aliases buf, and a large
// reply (an HGFS READ_V3) costs no allocation.
func (c *Conn) ReceiveInto(ctx context.Context, buf []byte) ([]byte, error) {
	max := c.MaxReceive
	if max <= 0 {
		max = DefaultMaxReceive
	}
	r, stop := c.stream(ctx, &c.kr, true)
	defer stop()
	for {
		content, err := datamap.ReadFrameInto(r, max, buf)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		p, err := datamap.DecodePacket(content)
		if err != nil {
			return nil, fmt.Errorf("sockchan: %w", err)
		}
		if p.Type == datamap.PacketData {
			return p.Payload, nil
		}
	}
}

// stream returns what a receive (read) or a send reads or writes bound
// to ctx: k waiting in the kernel with WaitInKernel, which honours ctx
// itself, else the conn with ctx's deadline set on it for the network
// poller until stop.
func (c *Conn) stream(ctx context.Context, k *kernelConn, read bool) (rw io.ReadWriter, stop func()) {
	if c.WaitInKernel {
		if rw = k.reset(ctx, c.conn, &c.closed); rw != io.ReadWriter(c.conn) {
			return rw, func() {}
		}
	}
	if ctx.Done() == nil {
		return c.conn, func() {}
	}
	set := c.conn.SetWriteDeadline
	if read {
		set = c.conn.SetReadDeadline
	}
	return c.conn, bindDeadline(ctx, set)
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.conn.Close()
}

// bindDeadline applies ctx's deadline to the connection and makes ctx's
// cancellation interrupt a blocked read or write. The returned func undoes
// both.
func bindDeadline(ctx context.Context, set func(time.Time) error) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	d, _ := ctx.Deadline()
	set(d) // zero means none
	fired := make(chan struct{})
	after := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !after() {
			<-fired // let it finish before clearing, or it could land later
		}
		set(time.Time{})
	}
}

// ctxErr reports a deadline forced by ctx as ctx's error, with the I/O
// error kept for context.
func ctxErr(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	// The connection's timer can fire a moment before the context's.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}
