package datamap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GuestRPC packet field ids (GUESTRPCPKT_FIELD_*).
const (
	FieldType      uint32 = 1
	FieldPayload   uint32 = 2
	FieldFastClose uint32 = 3
)

// PacketType is the value of the TYPE field.
type PacketType int64

// Packet types (GUESTRPCPKT_TYPE_*).
const (
	PacketData PacketType = 1
	PacketPing PacketType = 2
)

func (t PacketType) String() string {
	switch t {
	case PacketData:
		return "DATA"
	case PacketPing:
		return "PING"
	}
	return fmt.Sprintf("PacketType(%d)", int64(t))
}

// MaxGuestMessage is GUESTMSG_MAX_IN_SIZE: the largest message the VMX
// accepts from the guest.
const MaxGuestMessage = 64 << 10

// MaxGuestFrame is the largest DataMap content a well-formed guest packet
// can need: a TYPE entry (16 bytes), a FAST_CLOSE entry (16 bytes) and a
// PAYLOAD entry (12 bytes of header) around MaxGuestMessage bytes.
const MaxGuestFrame = MaxGuestMessage + 16 + 16 + 12

// Packet is a GuestRPC message on a vsock (or vmxsim unix) stream.
type Packet struct {
	Type PacketType
	// Payload is the RPC text. HasPayload distinguishes an empty payload
	// (a TCLO "empty reply") from an absent one (a PING).
	Payload    []byte
	HasPayload bool
	// FastClose asks the VMX to close the connection after replying; it is
	// set by one-shot RPCI channels.
	FastClose bool
}

// ErrBadPacket is returned by DecodePacket for a well-formed DataMap that is
// not a valid GuestRPC packet.
var ErrBadPacket = errors.New("datamap: bad guestrpc packet")

// EncodePacket returns the DataMap content of p (without the length prefix).
func EncodePacket(p Packet) []byte {
	m := Map{FieldType: {Type: TypeInt64, Int: int64(p.Type)}}
	if p.HasPayload || len(p.Payload) > 0 {
		m[FieldPayload] = Field{Type: TypeString, Str: p.Payload}
	}
	if p.FastClose {
		m[FieldFastClose] = Field{Type: TypeInt64, Int: 1}
	}
	return Encode(m)
}

// DecodePacket parses DataMap content as a GuestRPC packet. Fields with
// unknown ids are ignored, as the reference decoder ignores them; a TYPE
// field is required and known fields must have their expected types.
func DecodePacket(content []byte) (Packet, error) {
	p, ok := decodePacketFast(content)
	if !ok {
		var err error
		if p, err = decodePacketMap(content); err != nil {
			return Packet{}, err
		}
	}
	switch p.Type {
	case PacketData:
		if !p.HasPayload {
			return Packet{}, fmt.Errorf("%w: DATA packet without PAYLOAD", ErrBadPacket)
		}
	case PacketPing:
	default:
		return Packet{}, fmt.Errorf("%w: unknown TYPE %d", ErrBadPacket, int64(p.Type))
	}
	return p, nil
}

// decodePacketFast decodes the packets guests and the VMX send, the TYPE
// field, then PAYLOAD if any, then FAST_CLOSE if any, each once, with no
// other field, without building a Map; ok is false for any other content,
// which decodePacketMap then decodes (the fuzz test checks that both
// agree).
func decodePacketFast(b []byte) (p Packet, ok bool) {
	field := func(typ Type, id uint32, head int) bool {
		return len(b) >= head && Type(binary.BigEndian.Uint32(b)) == typ && binary.BigEndian.Uint32(b[4:]) == id
	}
	i64 := func(b []byte) int64 {
		return int64(uint64(binary.BigEndian.Uint32(b[4:]))<<32 | uint64(binary.BigEndian.Uint32(b)))
	}
	if !field(TypeInt64, FieldType, 16) {
		return Packet{}, false
	}
	p.Type = PacketType(i64(b[8:]))
	b = b[16:]
	if field(TypeString, FieldPayload, 12) {
		n := uint64(binary.BigEndian.Uint32(b[8:]))
		if n > uint64(len(b)-12) {
			return Packet{}, false
		}
		p.Payload, p.HasPayload = b[12:12+n:12+n], true
		b = b[12+n:]
	}
	if field(TypeInt64, FieldFastClose, 16) {
		p.FastClose = i64(b[8:]) != 0
		b = b[16:]
	}
	return p, len(b) == 0
}

// decodePacketMap decodes any DataMap content into a packet's fields.
func decodePacketMap(content []byte) (Packet, error) {
	m, err := Decode(content)
	if err != nil {
		return Packet{}, err
	}
	var p Packet
	t, ok := m[FieldType]
	if !ok {
		return Packet{}, fmt.Errorf("%w: no TYPE field", ErrBadPacket)
	}
	if t.Type != TypeInt64 {
		return Packet{}, fmt.Errorf("%w: TYPE is %s, want int64", ErrBadPacket, t.Type)
	}
	p.Type = PacketType(t.Int)
	if f, ok := m[FieldPayload]; ok {
		if f.Type != TypeString {
			return Packet{}, fmt.Errorf("%w: PAYLOAD is %s, want string", ErrBadPacket, f.Type)
		}
		p.Payload, p.HasPayload = f.Str, true
	}
	if f, ok := m[FieldFastClose]; ok {
		if f.Type != TypeInt64 {
			return Packet{}, fmt.Errorf("%w: FAST_CLOSE is %s, want int64", ErrBadPacket, f.Type)
		}
		p.FastClose = f.Int != 0
	}
	return p, nil
}

// AppendPacketFrame appends p as one length-prefixed frame to b: the
// bytes of AppendFrame(nil, EncodePacket(p)), built in place (no map, no
// sorting, one copy of the payload), for senders that reuse a buffer per
// message.
func AppendPacketFrame(b []byte, p Packet) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0) // the length, set below
	b = appendField(b, FieldType, Field{Type: TypeInt64, Int: int64(p.Type)})
	if p.HasPayload || len(p.Payload) > 0 {
		b = appendField(b, FieldPayload, Field{Type: TypeString, Str: p.Payload})
	}
	if p.FastClose {
		b = appendField(b, FieldFastClose, Field{Type: TypeInt64, Int: 1})
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}
