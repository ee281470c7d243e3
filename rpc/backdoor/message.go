package backdoor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/govmtools/govmtools/rpc"
)

// MaxReceive bounds a message from the host. The protocol sets no limit
// host to guest, but a corrupt size must not make the guest allocate
// gigabytes; the largest real replies (HGFS) are far below it.
const MaxReceive = 16 << 20

// maxCPTRetries bounds the restarts after checkpoint statuses within one
// send or receive. open-vm-tools retries forever; a host that reports a
// checkpoint on every call is broken, and the guest should say so rather
// than spin.
const maxCPTRetries = 64

// Errors of the message layer.
var (
	ErrOpen     = errors.New("backdoor: the VMX refused to open a channel")
	ErrClosed   = errors.New("backdoor: channel closed")
	ErrSend     = errors.New("backdoor: send failed")
	ErrReceive  = errors.New("backdoor: receive failed")
	ErrProtocol = errors.New("backdoor: protocol error")
)

// Channel is one GuestRPC message channel over the backdoor. It is an
// rpc.Channel of the polling shape: Send then Receive, and Receive returns
// an empty message when the VMX has nothing waiting (the DORECV status bit
// is clear). Backdoor calls cannot be interrupted, so a context only stops
// a call from starting.
//
// A Channel is used by one goroutine at a time; Close may be called from
// another, and a call after it fails with ErrClosed.
type Channel struct {
	h                  Hypercall
	proto              uint32
	id                 uint16
	cookieHi, cookieLo uint32

	mu     sync.Mutex // serializes calls with Close
	closed bool
}

var (
	_ rpc.Resumable    = (*Channel)(nil)
	_ rpc.IntoReceiver = (*Channel)(nil)
	_ rpc.CPUHolder    = (*Channel)(nil)
)

// Open opens a channel for proto (ProtoRPCI or ProtoTCLO). It asks for a
// cookie, which guards the channel against other processes of the guest,
// and retries once without it for VMXs that predate cookies.
func Open(h Hypercall, proto uint32) (*Channel, error) {
	for _, flags := range []uint32{flagCookie, 0} {
		r := Regs{BX: uint64(proto | flags), CX: msgOpen<<16 | CmdMessage}
		h.LB(&r)
		if status(r)&statusSuccess != 0 {
			return &Channel{
				h:        h,
				proto:    proto,
				id:       uint16(r.DX >> 16),
				cookieHi: uint32(r.SI),
				cookieLo: uint32(r.DI),
			}, nil
		}
	}
	return nil, fmt.Errorf("%w (protocol %#x)", ErrOpen, proto)
}

// HoldsCPU implements rpc.CPUHolder: a backdoor call runs on the calling
// CPU until the VMX has answered it.
func (c *Channel) HoldsCPU() bool { return true }

// ID returns the channel number the VMX gave.
func (c *Channel) ID() uint16 { return c.id }

func status(r Regs) uint16   { return uint16(r.CX >> 16) }
func hbStatus(r Regs) uint16 { return uint16(r.BX >> 16) }

// call makes one LB message call on this channel.
func (c *Channel) call(sub uint16, bx uint32) Regs {
	r := Regs{
		BX: uint64(bx),
		CX: uint64(sub)<<16 | CmdMessage,
		DX: uint64(c.id) << 16,
		SI: uint64(c.cookieHi),
		DI: uint64(c.cookieLo),
	}
	c.h.LB(&r)
	return r
}

// Send delivers msg to the VMX. Messages over rpc.MaxMessage are refused
// before anything is sent.
func (c *Channel) Send(ctx context.Context, msg []byte) error {
	if len(msg) > rpc.MaxMessage {
		return fmt.Errorf("%w: %d bytes", rpc.ErrTooLarge, len(msg))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	for range maxCPTRetries {
		cpt, err := c.send(msg)
		if err != nil || !cpt {
			return err
		}
	}
	return fmt.Errorf("%w: checkpoint status on every try", ErrSend)
}

// send makes one attempt; cpt reports a checkpoint, after which the whole
// message is sent again from SENDSIZE.
func (c *Channel) send(msg []byte) (cpt bool, err error) {
	r := c.call(msgSendSize, uint32(len(msg)))
	st := status(r)
	if st&statusSuccess == 0 {
		return false, fmt.Errorf("%w: size refused on channel %d (status %#x)", ErrSend, c.id, st)
	}
	if len(msg) == 0 {
		return false, nil
	}
	if st&statusHB != 0 {
		hr := Regs{
			BX: statusSuccess<<16 | hbCmdMessage,
			DX: uint64(c.id) << 16,
			DI: uint64(c.cookieLo),
			BP: uint64(c.cookieHi),
		}
		c.h.HBOut(&hr, msg)
		return checkStep(hbStatus(hr), ErrSend, c.id)
	}
	for len(msg) > 0 {
		// The final 1-3 bytes go in the low bytes of EBX, first byte
		// lowest, upper bytes zero: little-endian, as a full word.
		var w [4]byte
		n := copy(w[:], msg)
		msg = msg[n:]
		r := c.call(msgSendPayload, binary.LittleEndian.Uint32(w[:]))
		if cpt, err := checkStep(status(r), ErrSend, c.id); cpt || err != nil {
			return cpt, err
		}
	}
	return false, nil
}

// checkStep classifies the status of a step in the middle of a transfer:
// success, a checkpoint (restart), or failure.
func checkStep(st uint16, base error, id uint16) (cpt bool, err error) {
	switch {
	case st&statusSuccess != 0:
		return false, nil
	case st&statusCPT != 0:
		return true, nil
	}
	return false, fmt.Errorf("%w on channel %d (status %#x)", base, id, st)
}

// Receive returns the message the VMX has waiting, or an empty (non-nil)
// message when there is none.
func (c *Channel) Receive(ctx context.Context) ([]byte, error) {
	return c.ReceiveInto(ctx, nil)
}

// ReceiveInto is Receive into buf when the message fits (rpc.IntoReceiver):
// the VMX writes the reply straight into memory that is already mapped,
// instead of a fresh allocation per message.
func (c *Channel) ReceiveInto(ctx context.Context, buf []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	for range maxCPTRetries {
		msg, cpt, err := c.receive(buf)
		if err != nil || !cpt {
			return msg, err
		}
	}
	return nil, fmt.Errorf("%w: checkpoint status on every try", ErrReceive)
}

func (c *Channel) receive(into []byte) (msg []byte, cpt bool, err error) {
	r := c.call(msgRecvSize, 0)
	st := status(r)
	if st&statusSuccess == 0 {
		return nil, false, fmt.Errorf("%w: poll refused on channel %d (status %#x)", ErrReceive, c.id, st)
	}
	if st&statusDoRecv == 0 {
		return []byte{}, false, nil
	}
	if typ := uint16(r.DX >> 16); typ != msgSendSize {
		return nil, false, fmt.Errorf("%w: RECVSIZE answered with type %d on channel %d", ErrProtocol, typ, c.id)
	}
	size := uint64(uint32(r.BX))
	if size > MaxReceive {
		// A local failure: tell the VMX that delivery failed.
		c.call(msgRecvStatus, 0)
		return nil, false, fmt.Errorf("%w: message of %d bytes exceeds %d", ErrReceive, size, MaxReceive)
	}
	buf := into[:0]
	if buf == nil || uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if st&statusHB != 0 && size > 0 {
		hr := Regs{
			BX: statusSuccess<<16 | hbCmdMessage,
			DX: uint64(c.id) << 16,
			SI: uint64(c.cookieHi),
			BP: uint64(c.cookieLo),
		}
		c.h.HBIn(&hr, buf)
		if cpt, err := checkStep(hbStatus(hr), ErrReceive, c.id); cpt || err != nil {
			return nil, cpt, err
		}
	} else {
		for off := 0; off < len(buf); off += 4 {
			r := c.call(msgRecvPayload, statusSuccess)
			if cpt, err := checkStep(status(r), ErrReceive, c.id); cpt || err != nil {
				return nil, cpt, err
			}
			if typ := uint16(r.DX >> 16); typ != msgSendPayload {
				c.call(msgRecvPayload, 0) // delivery failed
				return nil, false, fmt.Errorf("%w: RECVPAYLOAD answered with type %d on channel %d", ErrProtocol, typ, c.id)
			}
			var w [4]byte
			binary.LittleEndian.PutUint32(w[:], uint32(r.BX))
			copy(buf[off:], w[:])
		}
	}
	r = c.call(msgRecvStatus, statusSuccess)
	if cpt, err := checkStep(status(r), ErrReceive, c.id); cpt || err != nil {
		return nil, cpt, err
	}
	return buf, false, nil
}

// Close closes the channel on the VMX. It is safe to call more than once.
func (c *Channel) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if st := status(c.call(msgClose, 0)); st&statusSuccess == 0 {
		return fmt.Errorf("%w: VMX refused to close channel %d (status %#x)", ErrClosed, c.id, st)
	}
	return nil
}

// Cookie returns the channel's cookie (zero when the VMX gave none).
func (c *Channel) Cookie() (hi, lo uint32) { return c.cookieHi, c.cookieLo }

// tokenPrefix starts every token; the version lets the format change.
const tokenPrefix = "bd1-"

// Token names the channel for Resume in another process: its protocol,
// number and cookie, as "bd1-PROTO-ID-COOKIEHI-COOKIELO" in hex. It is ""
// for a channel the VMX opened without a cookie (an old VMX), whose number
// another process may be given once it is closed: resuming it could read
// someone else's reply. The token is as good as the cookie, which guards
// the channel against other processes: keep it where only root can read.
func (c *Channel) Token() string {
	if c.cookieHi == 0 && c.cookieLo == 0 {
		return ""
	}
	return fmt.Sprintf("%s%08x-%04x-%08x-%08x", tokenPrefix, c.proto, c.id, c.cookieHi, c.cookieLo)
}

// ErrToken is returned by Resume for a token it cannot read.
var ErrToken = errors.New("backdoor: not a channel token")

// Resume returns the channel a token names, without any backdoor call: a
// channel opened by another (perhaps dead) process, which the VMX keeps
// until it is closed. Whether it is still open shows on the first call: a
// Receive returns the reply still waiting on it, an empty message when
// none is, or an error when the VMX no longer knows the channel (closed,
// a guest reset, a checkpoint). Close it when done.
func Resume(h Hypercall, token string) (*Channel, error) {
	f := strings.Split(strings.TrimPrefix(token, tokenPrefix), "-")
	var v [4]uint64
	ok := strings.HasPrefix(token, tokenPrefix) && len(f) == 4
	for i, width := range []int{8, 4, 8, 8} {
		if !ok {
			break
		}
		var err error
		v[i], err = strconv.ParseUint(f[i], 16, 32)
		ok = err == nil && len(f[i]) == width
	}
	if !ok || v[2] == 0 && v[3] == 0 {
		return nil, fmt.Errorf("%w: %q", ErrToken, token)
	}
	return &Channel{h: h, proto: uint32(v[0]), id: uint16(v[1]), cookieHi: uint32(v[2]), cookieLo: uint32(v[3])}, nil
}
