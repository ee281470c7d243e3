package hgfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// Config configures a Client.
type Config struct {
	Transport Transport
	// MaxPacket is the packet size asked for in CREATE_SESSION_V4; 0
	// means HGFS_LARGE_PACKET_MAX (522240).
	MaxPacket uint32
	// Logger receives session changes and malformed replies; nil
	// discards them.
	Logger *slog.Logger
}

// Client is an HGFS client over one transport.
type Client struct {
	tr Transport
	lg *slog.Logger
	// down is set while the transport fails (the VMX restarting, the
	// channel gone), so the outage is logged once.
	down   atomic.Bool
	askMax uint32
	ids    atomic.Uint32
	stats  stats
	// sendBufs holds request buffers: a message is "f " + packet, built
	// in place with room for the largest request (a WRITE_V3 under the
	// VMX's 64 KiB cap). replyBufs holds buffers for READ_V3 replies,
	// which the backdoor fills in place. Both are reused, so the VMX
	// reads and writes memory that is already mapped.
	sendBufs  sync.Pool
	replyBufs chan []byte

	// mu guards the session state.
	mu        sync.Mutex
	legacy    bool   // no V4 session: legacy headers
	session   uint64 // current session id
	gen       uint64 // bumped by every new session or restart seen
	maxPacket uint32
	renewing  chan struct{} // closed when an in-progress renewal ends
}

// Sizes derived from the session.
type Sizes struct {
	MaxPacket uint32 // negotiated packet size
	MaxRead   int    // data per READ_V3 request
	MaxWrite  int    // largest data per WRITE_V3 request (within the 64 KiB message cap)
}

// New opens a client: it pings the host (failing with ErrDisabled when
// shared folders are off) and creates a session; a host that refuses
// sessions is used with legacy headers.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Transport == nil {
		return nil, errors.New("hgfs: no transport")
	}
	if cfg.MaxPacket == 0 {
		cfg.MaxPacket = hgfsproto.LargePacketMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{tr: cfg.Transport, lg: cfg.Logger, askMax: cfg.MaxPacket}
	c.sendBufs.New = func() any { b := make([]byte, 0, hgfsproto.MaxGuestMessage); return &b }
	// A free list rather than a sync.Pool, which every garbage
	// collection empties: these buffers are large and their pages should
	// stay mapped.
	c.replyBufs = make(chan []byte, 2*max(cfg.Transport.Concurrency(), 1))
	// The ping: an empty packet. Its reply is an error packet, ignored.
	if _, err := c.tr.RoundTrip(ctx, nil); err != nil {
		return nil, fmt.Errorf("hgfs: cannot reach the host's shared folders: %w", err)
	}
	if err := c.newSession(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// newSession creates a V4 session, or falls back to legacy headers when
// the host answers PROTOCOL_ERROR.
func (c *Client) newSession(ctx context.Context) error {
	payload := hgfsproto.CreateSessionRequest{MaxPacketSize: c.askMax}.Append(nil)
	id := c.ids.Add(1)
	pkt := hgfsproto.AppendRequestV4(nil, id, hgfsproto.OpCreateSessionV4, 0, payload)
	start := time.Now()
	raw, err := c.tr.RoundTrip(ctx, pkt)
	c.stats.record(hgfsproto.OpCreateSessionV4, time.Since(start), err != nil)
	if err != nil {
		return &OpError{Op: hgfsproto.OpCreateSessionV4, Err: err}
	}
	r, err := hgfsproto.ParseReply(raw)
	if err == nil && r.ID != id {
		err = fmt.Errorf("%w: reply id %d for request %d", ErrMalformed, r.ID, id)
	}
	if err != nil {
		c.lg.Warn("hgfs: malformed reply", "op", hgfsproto.OpCreateSessionV4, "err", err)
		return &OpError{Op: hgfsproto.OpCreateSessionV4, Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if r.Status != hgfsproto.StatusSuccess || !r.V4 {
		c.legacy, c.session, c.maxPacket = true, 0, hgfsproto.LegacyLargePacketMax
		c.lg.Info("hgfs: host refused a session; using legacy headers", "status", r.Status)
		return nil
	}
	cs, err := hgfsproto.DecodeCreateSessionReply(r.Payload)
	if err != nil {
		c.lg.Warn("hgfs: malformed reply", "op", hgfsproto.OpCreateSessionV4, "err", err)
		return &OpError{Op: hgfsproto.OpCreateSessionV4, Err: err}
	}
	mp := cs.MaxPacketSize
	if cs.Flags&hgfsproto.SessionMaxPacketSizeValid == 0 || mp < hgfsproto.PacketMax || mp > hgfsproto.LargePacketMax {
		mp = hgfsproto.LegacyLargePacketMax // missing, tiny or huge: be safe
	}
	c.legacy, c.session, c.maxPacket = false, cs.SessionID, min(mp, c.askMax)
	c.lg.Debug("hgfs: session created", "session", fmt.Sprintf("%#x", cs.SessionID), "maxPacket", c.maxPacket)
	return nil
}

// renew replaces a session that the host called stale. Concurrent
// callers that saw the same stale generation share one renewal.
func (c *Client) renew(ctx context.Context, staleGen uint64) error {
	for {
		c.mu.Lock()
		if c.gen != staleGen {
			c.mu.Unlock()
			return nil
		}
		if w := c.renewing; w != nil {
			c.mu.Unlock()
			select {
			case <-w:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		c.renewing = done
		c.mu.Unlock()
		c.lg.Info("hgfs: session is stale (host restarted its HGFS server); creating a new one")
		err := c.newSession(ctx)
		c.mu.Lock()
		c.renewing = nil
		c.mu.Unlock()
		close(done)
		return err
	}
}

// replyBuf returns a buffer for a READ_V3 reply; putReplyBuf gives it
// back.
func (c *Client) replyBuf() []byte {
	select {
	case b := <-c.replyBufs:
		return b
	default:
		// "1 " and the packet, and room for the framing of a stream
		// channel, which reads the whole frame into it.
		return make([]byte, replyFrameRoom+2+int(c.askMax))
	}
}

// replyFrameRoom is room in a reply buffer for a stream channel's
// framing around the reply (DataMap fields, 28 bytes in the packets
// sent today).
const replyFrameRoom = 64

func (c *Client) putReplyBuf(b []byte) {
	select {
	case c.replyBufs <- b:
	default:
	}
}

// Sizes returns the negotiated sizes.
func (c *Client) Sizes() Sizes {
	c.mu.Lock()
	mp := c.maxPacket
	legacy := c.legacy
	c.mu.Unlock()
	return sizesFor(mp, legacy)
}

func sizesFor(mp uint32, legacy bool) Sizes {
	head := hgfsproto.HeaderSize
	if legacy {
		head = hgfsproto.LegacyHeaderSize
	}
	read := int(mp) - hgfsproto.HeaderSizeMax
	if read < hgfsproto.IOMax {
		read = hgfsproto.IOMax
	}
	read = min(read, hgfsproto.LargeIOMax)
	// A request, "f " included, must fit the VMX's message cap. The
	// largest such request, not a whole number of pages: a kernel write
	// is split into equal requests of at most this size (File.WriteAt),
	// so 1 MiB costs 17 round trips where 61,440-byte pages cost 18.
	write := hgfsproto.MaxGuestMessage - 2 - head - hgfsproto.WriteRequestHead
	write = min(write, read)
	return Sizes{MaxPacket: mp, MaxRead: read, MaxWrite: write}
}

// Generation identifies the current session; it changes when the client
// creates a new one.
func (c *Client) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Pipelined reports whether independent requests sent side by side
// finish sooner than one after the other: false over channels that hold
// the CPU for a call (the backdoor; see RPCTransport.FanOut) and over a
// transport of one channel.
func (c *Client) Pipelined() bool { return c.fanOut() > 1 }

// Stats returns per-op round-trip counts and latencies.
func (c *Client) Stats() []OpStat { return c.stats.snapshot() }

// Close destroys the session and closes the transport.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	legacy := c.legacy
	c.mu.Unlock()
	if !legacy {
		c.call(ctx, hgfsproto.OpDestroySessionV4, "", false, func(b []byte) []byte { return hgfsproto.AppendReserved(b) })
	}
	return c.tr.Close()
}

// call sends one request built by build and returns the reply payload.
// A STALE_SESSION reply renews the session and, for path-based requests
// (retry), sends the request once more.
func (c *Client) call(ctx context.Context, op hgfsproto.Op, path string, retry bool, build func([]byte) []byte) ([]byte, uint64, error) {
	return c.callInto(ctx, op, path, retry, build, nil)
}

// callInto is call receiving the reply into buf when the transport can;
// the payload may then alias buf.
func (c *Client) callInto(ctx context.Context, op hgfsproto.Op, path string, retry bool, build func([]byte) []byte, buf []byte) ([]byte, uint64, error) {
	for attempt := 0; ; attempt++ {
		payload, gen, status, err := c.roundTrip(ctx, op, build, buf)
		if err != nil {
			return nil, gen, &OpError{Op: op, Path: path, Err: err}
		}
		if status == hgfsproto.StatusStaleSession && attempt == 0 {
			if err := c.renew(ctx, gen); err != nil {
				return nil, gen, &OpError{Op: op, Path: path, Err: err}
			}
			if retry {
				continue
			}
		}
		if status != hgfsproto.StatusSuccess {
			return nil, gen, &OpError{Op: op, Path: path, Err: status}
		}
		return payload, gen, nil
	}
}

// roundTrip frames, sends and checks one request.
func (c *Client) roundTrip(ctx context.Context, op hgfsproto.Op, build func([]byte) []byte, into []byte) ([]byte, uint64, hgfsproto.Status, error) {
	c.mu.Lock()
	legacy, session, gen := c.legacy, c.session, c.gen
	c.mu.Unlock()
	id := c.ids.Add(1)
	bp := c.sendBufs.Get().(*[]byte)
	defer c.sendBufs.Put(bp)
	msg := append((*bp)[:0], 'f', ' ')
	if legacy {
		msg = build(hgfsproto.AppendLegacyHeader(msg, id, uint32(op)))
	} else {
		msg = build(append(msg, make([]byte, hgfsproto.HeaderSize)...))
		hgfsproto.PutHeader(msg[2:], hgfsproto.Header{
			Version: hgfsproto.HeaderVersion, PacketSize: uint32(len(msg) - 2), RequestID: id,
			Op: op, Flags: hgfsproto.PacketFlagRequest, SessionID: session,
		})
	}
	if cap(msg) <= hgfsproto.MaxGuestMessage {
		*bp = msg[:0]
	}
	start := time.Now()
	var raw []byte
	var err error
	if rt, ok := c.tr.(*RPCTransport); ok {
		raw, err = rt.send(ctx, msg, into)
	} else {
		raw, err = c.tr.RoundTrip(ctx, msg[2:])
	}
	if err != nil {
		c.stats.record(op, time.Since(start), true)
		if ctx.Err() == nil && !c.down.Swap(true) {
			// Once per outage: every operation fails with EIO until a
			// reply comes again.
			c.lg.Warn("hgfs: cannot reach the host; operations fail with EIO until it answers again", "op", op, "err", err)
		}
		return nil, gen, 0, &TransportError{Err: err}
	}
	if c.down.Swap(false) {
		c.lg.Info("hgfs: the host answers again")
	}
	r, err := hgfsproto.ParseReply(raw)
	if err == nil && r.ID != id {
		err = fmt.Errorf("%w: reply id %d for request %d", ErrMalformed, r.ID, id)
	}
	if err == nil && r.V4 == legacy {
		err = fmt.Errorf("%w: reply framing does not match the request", ErrMalformed)
	}
	c.stats.record(op, time.Since(start), err != nil || r.Status != hgfsproto.StatusSuccess)
	if err != nil {
		c.lg.Warn("hgfs: malformed reply from the host", "op", op, "err", err, "len", len(raw))
		return nil, gen, 0, err
	}
	return r.Payload, gen, r.Status, nil
}

// malformed logs a reply payload that failed to decode and returns the
// error for the caller.
func (c *Client) malformed(op hgfsproto.Op, path string, err error) error {
	c.lg.Warn("hgfs: malformed reply from the host", "op", op, "path", path, "err", err)
	return &OpError{Op: op, Path: path, Err: err}
}

// cpName converts a client path ("share/dir/name", components as the
// guest shows them, escaped) to a by-name FileName; see hgfsproto.CPName.
func cpName(path string) hgfsproto.FileName {
	return hgfsproto.PathName(hgfsproto.CPName(path))
}

// Join joins path components with "/", skipping empty ones.
func Join(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e = strings.Trim(e, "/"); e != "" {
			parts = append(parts, e)
		}
	}
	return strings.Join(parts, "/")
}
