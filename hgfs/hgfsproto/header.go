package hgfsproto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error: the bytes do not hold
// what their lengths and fields claim.
var ErrMalformed = errors.New("hgfs: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Header is the V4 packet header (HgfsHeader, 52 bytes).
type Header struct {
	Version     uint8
	PacketSize  uint32 // header + payload
	HeaderSize  uint32
	RequestID   uint32
	Op          Op
	Status      Status
	Flags       uint32
	Information uint32
	SessionID   uint64
}

// PutHeader writes h into b[:HeaderSize]. A zero HeaderSize is written
// as HeaderSize.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	if h.HeaderSize == 0 {
		h.HeaderSize = HeaderSize
	}
	b[0] = h.Version
	b[1], b[2], b[3] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[4:], uint32(OpNewHeader))
	binary.LittleEndian.PutUint32(b[8:], h.PacketSize)
	binary.LittleEndian.PutUint32(b[12:], h.HeaderSize)
	binary.LittleEndian.PutUint32(b[16:], h.RequestID)
	binary.LittleEndian.PutUint32(b[20:], uint32(h.Op))
	binary.LittleEndian.PutUint32(b[24:], uint32(h.Status))
	binary.LittleEndian.PutUint32(b[28:], h.Flags)
	binary.LittleEndian.PutUint32(b[32:], h.Information)
	binary.LittleEndian.PutUint64(b[36:], h.SessionID)
	binary.LittleEndian.PutUint64(b[44:], 0)
}

// AppendHeader appends h to b.
func AppendHeader(b []byte, h Header) []byte {
	n := len(b)
	b = append(b, make([]byte, HeaderSize)...)
	PutHeader(b[n:], h)
	return b
}

// IsV4 reports whether a packet carries a V4 header (OpNewHeader at
// offset 4, where a legacy header has its op).
func IsV4(p []byte) bool {
	return len(p) >= 8 && binary.LittleEndian.Uint32(p[4:]) == uint32(OpNewHeader)
}

// ParseHeader decodes a V4 header and returns it with the payload, the
// bytes from HeaderSize to PacketSize. It applies the host's checks: at
// least 52 bytes, a PacketSize within the packet and not below
// HeaderSize, a version of at least 1.
func ParseHeader(p []byte) (Header, []byte, error) {
	if len(p) < HeaderSize {
		return Header{}, nil, malformed("v4 packet of %d bytes is shorter than its header", len(p))
	}
	if binary.LittleEndian.Uint32(p[4:]) != uint32(OpNewHeader) {
		return Header{}, nil, malformed("not a v4 header")
	}
	h := Header{
		Version:     p[0],
		PacketSize:  binary.LittleEndian.Uint32(p[8:]),
		HeaderSize:  binary.LittleEndian.Uint32(p[12:]),
		RequestID:   binary.LittleEndian.Uint32(p[16:]),
		Op:          Op(binary.LittleEndian.Uint32(p[20:])),
		Status:      Status(binary.LittleEndian.Uint32(p[24:])),
		Flags:       binary.LittleEndian.Uint32(p[28:]),
		Information: binary.LittleEndian.Uint32(p[32:]),
		SessionID:   binary.LittleEndian.Uint64(p[36:]),
	}
	switch {
	case h.Version < 1:
		return h, nil, malformed("v4 header version %d", h.Version)
	case h.HeaderSize < HeaderSize:
		return h, nil, malformed("v4 header size %d", h.HeaderSize)
	case h.PacketSize < h.HeaderSize:
		return h, nil, malformed("v4 packet size %d below header size %d", h.PacketSize, h.HeaderSize)
	case uint64(h.PacketSize) > uint64(len(p)):
		return h, nil, malformed("v4 packet size %d but %d bytes received", h.PacketSize, len(p))
	}
	return h, p[h.HeaderSize:h.PacketSize], nil
}

// LegacyHeader is the 8-byte HgfsRequest/HgfsReply header. The second
// word is the op in a request and the status in a reply.
type LegacyHeader struct {
	ID   uint32
	Word uint32
}

// AppendLegacyHeader appends a legacy header.
func AppendLegacyHeader(b []byte, id, word uint32) []byte {
	b = binary.LittleEndian.AppendUint32(b, id)
	return binary.LittleEndian.AppendUint32(b, word)
}

// ParseLegacyHeader decodes the first 8 bytes of p.
func ParseLegacyHeader(p []byte) (LegacyHeader, error) {
	if len(p) < LegacyHeaderSize {
		return LegacyHeader{}, malformed("legacy packet of %d bytes", len(p))
	}
	return LegacyHeader{ID: binary.LittleEndian.Uint32(p), Word: binary.LittleEndian.Uint32(p[4:])}, nil
}

// Kind tells how a request packet is framed.
type Kind int

// Request framings.
const (
	// KindV4: a V4 header; Payload is the op struct.
	KindV4 Kind = iota + 1
	// KindLegacyV3: a legacy header followed by a V3 op struct; Payload is
	// the op struct.
	KindLegacyV3
	// KindV1: a V1/V2 op whose struct embeds the legacy header; Payload is
	// the whole packet, header included.
	KindV1
)

// Request is a parsed request packet, as a server sees it.
type Request struct {
	Kind    Kind
	ID      uint32
	Op      Op
	Header  Header // for KindV4
	Payload []byte
}

// ErrNoReply marks a packet the host drops without an HGFS reply: fewer
// than 8 bytes, or a legacy header with an op that has no legacy form.
var ErrNoReply = errors.New("hgfs: packet dropped without reply")

// ParseRequest classifies and decodes a request packet by the host's
// rules (docs/architecture.md section 7). Errors wrapping ErrNoReply mean no HGFS
// reply is due; other errors deserve PROTOCOL_ERROR in the request's
// framing, for which the partially filled Request is returned.
func ParseRequest(p []byte) (Request, error) {
	if len(p) < LegacyHeaderSize {
		return Request{}, fmt.Errorf("%w: %d-byte packet", ErrNoReply, len(p))
	}
	if IsV4(p) {
		h, payload, err := ParseHeader(p)
		r := Request{Kind: KindV4, ID: h.RequestID, Op: h.Op, Header: h, Payload: payload}
		if err != nil && len(p) < HeaderSize {
			r.ID, r.Op = 0, 0
		}
		return r, err
	}
	lh, _ := ParseLegacyHeader(p)
	op := Op(lh.Word)
	switch {
	case op < OpOpenV3:
		return Request{Kind: KindV1, ID: lh.ID, Op: op, Payload: p}, nil
	case op < OpCreateSessionV4:
		return Request{Kind: KindLegacyV3, ID: lh.ID, Op: op, Payload: p[LegacyHeaderSize:]}, nil
	}
	return Request{}, fmt.Errorf("%w: legacy header with op %d", ErrNoReply, op)
}

// AppendRequestV4 appends a V4 request packet with payload.
func AppendRequestV4(b []byte, id uint32, op Op, session uint64, payload []byte) []byte {
	b = AppendHeader(b, Header{
		Version: HeaderVersion, PacketSize: uint32(HeaderSize + len(payload)),
		RequestID: id, Op: op, Flags: PacketFlagRequest, SessionID: session,
	})
	return append(b, payload...)
}

// AppendReply appends the reply to req with status and payload, in the
// request's framing: a V4 header with the payload (empty on error), a
// legacy header with the V3 reply struct (just the header on error), or
// for V1 ops the payload alone, which must begin with the 8-byte legacy
// header that AppendReply fills in.
func AppendReply(b []byte, req Request, session uint64, status Status, payload []byte) []byte {
	if status != StatusSuccess && req.Kind != KindV1 {
		payload = nil
	}
	switch req.Kind {
	case KindV4:
		b = AppendHeader(b, Header{
			Version: HeaderVersion, PacketSize: uint32(HeaderSize + len(payload)),
			RequestID: req.ID, Op: req.Op, Status: status, Flags: PacketFlagReply,
			Information: uint32(status), SessionID: session,
		})
		return append(b, payload...)
	case KindLegacyV3:
		b = AppendLegacyHeader(b, req.ID, uint32(status))
		return append(b, payload...)
	}
	if len(payload) < LegacyHeaderSize {
		payload = make([]byte, LegacyHeaderSize)
	}
	n := len(b)
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b[n:], req.ID)
	binary.LittleEndian.PutUint32(b[n+4:], uint32(status))
	return b
}

// Reply is a parsed reply packet, as a client sees it.
type Reply struct {
	V4      bool
	ID      uint32
	Status  Status
	Session uint64 // V4 only
	Payload []byte // the op reply struct (after the legacy header for V3 ops)
}

// ParseReply decodes a reply packet. A V4 reply must carry the REPLY
// flag when it carries any flag. For legacy replies the payload is what
// follows the 8-byte header.
func ParseReply(p []byte) (Reply, error) {
	if len(p) < LegacyHeaderSize {
		return Reply{}, malformed("reply of %d bytes", len(p))
	}
	if IsV4(p) {
		h, payload, err := ParseHeader(p)
		if err != nil {
			return Reply{}, err
		}
		if h.Flags != 0 && h.Flags&PacketFlagReply == 0 {
			return Reply{}, malformed("v4 reply without the REPLY flag (flags %#x)", h.Flags)
		}
		return Reply{V4: true, ID: h.RequestID, Status: h.Status, Session: h.SessionID, Payload: payload}, nil
	}
	lh, _ := ParseLegacyHeader(p)
	return Reply{ID: lh.ID, Status: Status(lh.Word), Payload: p[LegacyHeaderSize:]}, nil
}
