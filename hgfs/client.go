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
	tr     Transport
	lg     *slog.Logger
	askMax uint32
	ids    atomic.Uint32
	stats  stats

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
	MaxWrite  int    // data per WRITE_V3 request (within the 64 KiB message cap)
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
	// A request, "f " included, must fit the VMX's message cap.
	write := hgfsproto.MaxGuestMessage - 2 - head - hgfsproto.WriteRequestHead
	write = min(write&^(hgfsproto.PageSize-1), read)
	return Sizes{MaxPacket: mp, MaxRead: read, MaxWrite: write}
}

// Generation identifies the current session; it changes when the client
// creates a new one.
func (c *Client) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

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
	for attempt := 0; ; attempt++ {
		payload, gen, status, err := c.roundTrip(ctx, op, build)
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
func (c *Client) roundTrip(ctx context.Context, op hgfsproto.Op, build func([]byte) []byte) ([]byte, uint64, hgfsproto.Status, error) {
	c.mu.Lock()
	legacy, session, gen := c.legacy, c.session, c.gen
	c.mu.Unlock()
	id := c.ids.Add(1)
	var pkt []byte
	if legacy {
		pkt = build(hgfsproto.AppendLegacyHeader(make([]byte, 0, 128), id, uint32(op)))
	} else {
		pkt = build(make([]byte, hgfsproto.HeaderSize, 128))
		hgfsproto.PutHeader(pkt, hgfsproto.Header{
			Version: hgfsproto.HeaderVersion, PacketSize: uint32(len(pkt)), RequestID: id,
			Op: op, Flags: hgfsproto.PacketFlagRequest, SessionID: session,
		})
	}
	start := time.Now()
	raw, err := c.tr.RoundTrip(ctx, pkt)
	if err != nil {
		c.stats.record(op, time.Since(start), true)
		return nil, gen, 0, err
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
// host names them) to a by-name FileName.
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
