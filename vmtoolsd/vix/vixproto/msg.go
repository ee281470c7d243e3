package vixproto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"unicode/utf8"
)

// Header is the 51-byte VixCommandRequestHeader (little-endian, packed).
type Header struct {
	Magic          uint32
	MessageVersion uint16
	TotalLength    uint32
	HeaderLength   uint32
	BodyLength     uint32
	CredLength     uint32
	CommonFlags    uint8
	OpCode         uint32
	RequestFlags   uint32
	Timeout        uint32
	Cookie         uint64
	ClientHandle   uint32
	CredType       uint32
}

// Request is a validated VIX request: its header and slices of the
// message for the body and the credential block.
type Request struct {
	Header
	Body []byte // BodyLength bytes after the header
	Cred []byte // CredLength bytes after the body
	raw  []byte
}

// Raw is the whole message as decoded.
func (r *Request) Raw() []byte { return r.raw }

// WithOpCode returns a copy of msg with its opcode replaced.
func WithOpCode(msg []byte, op uint32) []byte {
	out := append([]byte(nil), msg...)
	if len(out) >= HeaderLen {
		binary.LittleEndian.PutUint32(out[23:], op)
	}
	return out
}

// Credential is a decoded name/password credential. Wipe it when done.
type Credential struct {
	Name     string
	Password []byte
}

// Wipe zeroes the password.
func (c *Credential) Wipe() {
	clear(c.Password)
	c.Password = nil
}

func putHeader(b []byte, h *Header) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Magic)
	le.PutUint16(b[4:], h.MessageVersion)
	le.PutUint32(b[6:], h.TotalLength)
	le.PutUint32(b[10:], h.HeaderLength)
	le.PutUint32(b[14:], h.BodyLength)
	le.PutUint32(b[18:], h.CredLength)
	b[22] = h.CommonFlags
	le.PutUint32(b[23:], h.OpCode)
	le.PutUint32(b[27:], h.RequestFlags)
	le.PutUint32(b[31:], h.Timeout)
	le.PutUint64(b[35:], h.Cookie)
	le.PutUint32(b[43:], h.ClientHandle)
	le.PutUint32(b[47:], h.CredType)
}

func getHeader(b []byte) Header {
	le := binary.LittleEndian
	return Header{
		Magic: le.Uint32(b[0:]), MessageVersion: le.Uint16(b[4:]), TotalLength: le.Uint32(b[6:]),
		HeaderLength: le.Uint32(b[10:]), BodyLength: le.Uint32(b[14:]), CredLength: le.Uint32(b[18:]),
		CommonFlags: b[22], OpCode: le.Uint32(b[23:]), RequestFlags: le.Uint32(b[27:]), Timeout: le.Uint32(b[31:]),
		Cookie: le.Uint64(b[35:]), ClientHandle: le.Uint32(b[43:]), CredType: le.Uint32(b[47:]),
	}
}

// SplitRelayed splits the arguments of a Vix_1_Relayed_Command (the bytes
// after the command name) into the quoted request name and the binary
// VIX message: skip to the first '"', take up to the next unescaped '"'
// (a backslash protects the next byte), then skip to the first NUL and
// past it. A missing quote or NUL is ErrInvalidMessageHeader.
func SplitRelayed(args []byte) (name string, msg []byte, err error) {
	i := bytes.IndexByte(args, '"')
	if i < 0 {
		return "", nil, ErrInvalidMessageHeader
	}
	j := i + 1
	for ; j < len(args); j++ {
		if args[j] == '\\' {
			j++
			continue
		}
		if args[j] == '"' {
			break
		}
		if args[j] == 0 {
			return "", nil, ErrInvalidMessageHeader
		}
	}
	if j >= len(args) {
		return "", nil, ErrInvalidMessageHeader
	}
	name = string(args[i+1 : j])
	k := bytes.IndexByte(args[j:], 0)
	if k < 0 {
		return "", nil, ErrInvalidMessageHeader
	}
	return name, args[j+k+1:], nil
}

// Relayed frames msg as the arguments of a Vix_1_Relayed_Command: the
// full TCLO command, name included.
func Relayed(requestName string, msg []byte) []byte {
	out := make([]byte, 0, len(RelayedCommand)+len(requestName)+4+len(msg))
	out = append(out, RelayedCommand...)
	out = append(out, ' ', '"')
	out = append(out, requestName...)
	out = append(out, '"', 0)
	return append(out, msg...)
}

// Decode validates msg, the whole VIX message as received, and returns
// the request. Every length is checked against the bytes actually
// received before anything is sliced: magic, version 5, header length
// 51, total length equal to header+body+credential (+44 with
// RequestIncludesAuthDataV1) and to len(msg), and at most
// MaxRequestSize. Any failure is ErrInvalidMessageHeader, as the guest
// answers it.
func Decode(msg []byte) (*Request, error) {
	if len(msg) < HeaderLen || len(msg) > MaxRequestSize {
		return nil, ErrInvalidMessageHeader
	}
	h := getHeader(msg)
	if h.Magic != Magic || h.MessageVersion != Version || h.HeaderLength != HeaderLen {
		return nil, ErrInvalidMessageHeader
	}
	want := uint64(h.HeaderLength) + uint64(h.BodyLength) + uint64(h.CredLength)
	if h.RequestFlags&RequestIncludesAuthDataV1 != 0 {
		want += AuthDataV1Len
	}
	if uint64(h.TotalLength) != want || want != uint64(len(msg)) {
		return nil, ErrInvalidMessageHeader
	}
	bodyEnd := HeaderLen + int(h.BodyLength)
	return &Request{Header: h, Body: msg[HeaderLen:bodyEnd], Cred: msg[bodyEnd : bodyEnd+int(h.CredLength)], raw: msg}, nil
}

// NewRequest encodes a request: header, body, then the credential block.
// It refuses (ErrArgumentTooBig) a header and body above MaxUserInput,
// as the VMX does before sending.
func NewRequest(op uint32, flags uint8, reqFlags uint32, credType uint32, body, cred []byte) ([]byte, error) {
	if HeaderLen+len(body) > MaxUserInput || HeaderLen+len(body)+len(cred) > MaxRequestSize {
		return nil, ErrArgumentTooBig
	}
	total := HeaderLen + len(body) + len(cred)
	b := make([]byte, total)
	putHeader(b, &Header{
		Magic: Magic, MessageVersion: Version, TotalLength: uint32(total), HeaderLength: HeaderLen,
		BodyLength: uint32(len(body)), CredLength: uint32(len(cred)), CommonFlags: flags | FlagRequest,
		OpCode: op, RequestFlags: reqFlags, Timeout: 0xFFFFFFFF, CredType: credType,
	})
	copy(b[HeaderLen:], body)
	copy(b[HeaderLen+len(body):], cred)
	return b, nil
}

// ObfuscateNamePassword is VixMsg_ObfuscateNamePassword: base64 of
// name NUL password NUL, with the six bytes base64 never produces escaped.
func ObfuscateNamePassword(name string, password []byte) []byte {
	raw := make([]byte, 0, len(name)+len(password)+2)
	raw = append(raw, name...)
	raw = append(raw, 0)
	raw = append(raw, password...)
	raw = append(raw, 0)
	out := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(out, raw)
	clear(raw)
	return out
}

// NamePasswordCred is the credential block of types 1 and 4:
// {nameLength, passwordLength}, the obfuscated string, NUL.
func NamePasswordCred(name string, password []byte) []byte {
	ob := ObfuscateNamePassword(name, password)
	b := make([]byte, 8, 8+len(ob)+1)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(name)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(password)))
	b = append(b, ob...)
	b = append(b, 0)
	clear(ob)
	return b
}

// DecodeNamePassword decodes the credential block of types 1 and 4. The
// region must be at least 8 bytes and hold a NUL after the 8-byte head;
// the string is unescaped (\1..\7 only), base64-decoded, and must hold
// name NUL password NUL, both valid UTF-8. Any failure is
// ErrInvalidLoginCredentials, as a login that cannot succeed.
func DecodeNamePassword(cred []byte) (*Credential, error) {
	if len(cred) < 9 {
		return nil, ErrInvalidLoginCredentials
	}
	s := cred[8:]
	n := bytes.IndexByte(s, 0)
	if n < 0 {
		return nil, ErrInvalidLoginCredentials
	}
	s = s[:n]
	un := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			if i+1 >= len(s) {
				return nil, ErrInvalidLoginCredentials
			}
			i++
			idx := bytes.IndexByte([]byte("1234567"), s[i])
			if idx < 0 {
				return nil, ErrInvalidLoginCredentials
			}
			c = "\\'\" \r\n\t"[idx]
		}
		un = append(un, c)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(un)))
	m, err := base64.StdEncoding.Decode(raw, un)
	clear(un)
	if err != nil {
		clear(raw)
		return nil, ErrInvalidLoginCredentials
	}
	raw = raw[:m]
	a := bytes.IndexByte(raw, 0)
	if a < 0 {
		clear(raw)
		return nil, ErrInvalidLoginCredentials
	}
	b := bytes.IndexByte(raw[a+1:], 0)
	if b < 0 || !utf8.Valid(raw[:a]) || !utf8.Valid(raw[a+1:a+1+b]) || a == 0 {
		clear(raw)
		return nil, ErrInvalidLoginCredentials
	}
	c := &Credential{Name: string(raw[:a]), Password: append([]byte(nil), raw[a+1:a+1+b]...)}
	clear(raw)
	return c, nil
}
