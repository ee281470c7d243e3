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
	// WaitInKernel makes Receive wait for the host's packet in a
	// blocking poll(2) of the socket rather than in Go's network poller
	// (see kernelwait_unix.go), for request-reply channels (RPCI), whose
	// reply follows the request at once. Not for TCLO, whose Receive
	// waits for the host's next command for seconds. A conn that is not
	// a syscall.Conn always uses the poller.
	WaitInKernel bool

	wmu    sync.Mutex  // serializes writes (replies and heartbeats)
	closed atomic.Bool // set by Close, for a receive waiting in the kernel
	// wbuf is the frame being written, reused (under wmu), so a send
	// allocates nothing once it has grown to the largest message.
	wbuf []byte
	// rd is the receive side's reader state (one reader at a time):
	// bytes read past the last frame, and the kernel wait's reader.
	rd reader
}

var _ rpc.EventChannel = (*Conn)(nil)

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

func (c *Conn) write(ctx context.Context, p datamap.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	frame := datamap.AppendPacketFrame(c.wbuf[:0], p)
	if cap(frame) <= maxKeptBuffer {
		c.wbuf = frame
	}
	// Most frames fit the socket's buffer at once: one write(2), and no
	// deadline to arm and clear around it (a runtime timer each time).
	n := tryWrite(c.conn, frame)
	if n == len(frame) {
		return nil
	}
	stop := bindDeadline(ctx, c.conn.SetWriteDeadline)
	defer stop()
	if _, err := c.conn.Write(frame[n:]); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}

// maxKeptBuffer bounds the send and receive buffers a Conn keeps between
// messages: the largest guest message with its framing, and the HGFS
// replies of metadata requests; a larger one is used once and dropped.
const maxKeptBuffer = datamap.MaxGuestFrame + 4

// Receive reads packets until a DATA packet arrives and returns its
// payload. Heartbeats from the peer are skipped. A malformed packet is an
// error, after which the stream cannot be trusted and should be closed.
func (c *Conn) Receive(ctx context.Context) ([]byte, error) {
	max := c.MaxReceive
	if max <= 0 {
		max = DefaultMaxReceive
	}
	var r io.Reader = c.conn
	kernel := false
	if c.WaitInKernel {
		r, kernel = c.rd.kernel(ctx, c.conn, &c.closed)
	}
	if !kernel {
		// The kernel wait heeds ctx itself; Go's poller needs the
		// deadline.
		stop := bindDeadline(ctx, c.conn.SetReadDeadline)
		defer stop()
	}
	for {
		content, err := c.rd.frame(r, max)
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
