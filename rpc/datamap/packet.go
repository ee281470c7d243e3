package datamap

import (
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
