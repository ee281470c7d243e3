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

// AppendPacketFrame appends p framed as on the wire (the length prefix
// and the content) to b: the bytes of AppendFrame(b, EncodePacket(p)),
// written in place with no Map and no intermediate copy of the payload,
// for the hot path of every message sent.
func AppendPacketFrame(b []byte, p Packet) []byte {
	hasPayload := p.HasPayload || len(p.Payload) > 0
	n := 16 // TYPE
	if hasPayload {
		n += 12 + len(p.Payload)
	}
	if p.FastClose {
		n += 16
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	// Fields in ascending id order, as Encode writes them.
	b = appendField(b, FieldType, Field{Type: TypeInt64, Int: int64(p.Type)})
	if hasPayload {
		b = appendField(b, FieldPayload, Field{Type: TypeString, Str: p.Payload})
	}
	if p.FastClose {
		b = appendField(b, FieldFastClose, Field{Type: TypeInt64, Int: 1})
	}
	return b
}

// maxPacketFields bounds the fields DecodePacket tracks for duplicates
// without a map; content with more fields is decoded through Decode.
const maxPacketFields = 16

// errManyFields ends DecodePacket's walk of content with more fields
// than it tracks.
var errManyFields = errors.New("datamap: more fields than tracked in place")

// DecodePacket parses DataMap content as a GuestRPC packet. Fields with
// unknown ids are ignored, as the reference decoder ignores them; a TYPE
// field is required and known fields must have their expected types.
// It accepts and refuses exactly what Decode does, but walks the content
// in place: the payload aliases content, and nothing is allocated for a
// packet of the usual few fields.
func DecodePacket(content []byte) (Packet, error) {
	var seen [maxPacketFields]uint32
	var fields [4]Field // by id, for the known ones (index 0 unused)
	var have [4]bool
	nseen := 0
	err := walk(content, false, func(start int, id uint32, f Field) error {
		if nseen == len(seen) {
			return errManyFields
		}
		for _, s := range seen[:nseen] {
			if s == id {
				return fmt.Errorf("%w %d at offset %d", ErrDuplicateID, id, start)
			}
		}
		seen[nseen] = id
		nseen++
		if id < uint32(len(fields)) {
			fields[id], have[id] = f, true
		}
		return nil
	})
	if err == errManyFields {
		return decodePacketMap(content)
	}
	if err != nil {
		return Packet{}, err
	}
	return packetOf(&fields, &have)
}

// decodePacketMap is DecodePacket through Decode, for content with more
// fields than DecodePacket tracks in place.
func decodePacketMap(content []byte) (Packet, error) {
	m, err := Decode(content)
	if err != nil {
		return Packet{}, err
	}
	var fields [4]Field
	var have [4]bool
	for id := range uint32(len(fields)) {
		fields[id], have[id] = m[id]
	}
	return packetOf(&fields, &have)
}

// packetOf checks the known fields of a decoded DataMap (fields and
// have by id) and makes the packet of them.
func packetOf(fields *[4]Field, have *[4]bool) (Packet, error) {
	var p Packet
	t, ok := fields[FieldType], have[FieldType]
	if !ok {
		return Packet{}, fmt.Errorf("%w: no TYPE field", ErrBadPacket)
	}
	if t.Type != TypeInt64 {
		return Packet{}, fmt.Errorf("%w: TYPE is %s, want int64", ErrBadPacket, t.Type)
	}
	p.Type = PacketType(t.Int)
	if f, ok := fields[FieldPayload], have[FieldPayload]; ok {
		if f.Type != TypeString {
			return Packet{}, fmt.Errorf("%w: PAYLOAD is %s, want string", ErrBadPacket, f.Type)
		}
		p.Payload, p.HasPayload = f.Str, true
	}
	if f, ok := fields[FieldFastClose], have[FieldFastClose]; ok {
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
