package backdoor

import (
	"encoding/binary"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// msgCall is one call on an open channel: the registers, the caller, and
// the HB status bit to offer (0 with NoHB).
type msgCall struct {
	r     *Regs
	owner int
	ch    *bdChannel
	hb    uint16
}

// msgOps serves the message sub-types on an open channel, by sub-type
// (MsgOpen is served before a channel exists). Each returns the status
// for ECX high 16. Preconditions: b.mu is held.
var msgOps = [...]func(b *Server, c msgCall) uint16{
	MsgSendSize:    (*Server).sendSize,
	MsgSendPayload: (*Server).sendPayload,
	MsgRecvSize:    (*Server).recvSize,
	MsgRecvPayload: (*Server).recvPayload,
	MsgRecvStatus:  (*Server).recvStatus,
	MsgClose:       (*Server).closeMsg,
}

// message serves CmdMessage: the sub-type is in ECX high 16, the status
// goes back there.
func (b *Server) message(r *Regs, owner int) {
	sub := uint16(r.CX >> 16)
	b.mu.Lock()
	defer b.mu.Unlock()
	if sub == MsgOpen {
		b.open(r, owner)
		return
	}
	ch := b.lookup(uint16(r.DX>>16), uint32(r.SI), uint32(r.DI))
	if ch == nil || int(sub) >= len(msgOps) || msgOps[sub] == nil {
		setStatus(r, 0)
		return
	}
	c := msgCall{r: r, owner: owner, ch: ch}
	if !b.opts.NoHB {
		c.hb = StatusHB
	}
	setStatus(r, msgOps[sub](b, c))
}

// sendSize serves MESSAGE_TYPE_SENDSIZE: the guest announces a message of
// EBX bytes.
func (b *Server) sendSize(c msgCall) uint16 {
	ch := c.ch
	if b.killHere(ch, KillAtSendSize, c.owner) {
		return 0
	}
	n := int(uint32(c.r.BX))
	if n > vmx.MaxGuestMessage {
		b.lg.Warn("backdoor: guest message over 64 KiB refused", "channel", ch.id, "len", n)
		ch.sending = false
		return 0
	}
	ch.sending, ch.sendLen, ch.sendBuf = true, n, make([]byte, 0, n)
	if ch.proto == ProtoRPCI {
		ch.rtStart = time.Now()
	}
	if n == 0 && b.received(ch, c.owner) {
		return 0
	}
	return StatusSuccess | c.hb
}

// sendPayload serves MESSAGE_TYPE_SENDPAYLOAD: up to four bytes of the
// message in EBX.
func (b *Server) sendPayload(c msgCall) uint16 {
	ch := c.ch
	if !ch.sending {
		return 0
	}
	if ch.cpt {
		ch.cpt, ch.sending, ch.sendBuf = false, false, nil
		b.cpts.Add(1)
		return StatusCPT
	}
	var w [4]byte
	binary.LittleEndian.PutUint32(w[:], uint32(c.r.BX))
	k := min(4, ch.sendLen-len(ch.sendBuf))
	ch.sendBuf = append(ch.sendBuf, w[:k]...)
	if len(ch.sendBuf) == ch.sendLen && b.received(ch, c.owner) {
		return 0
	}
	return StatusSuccess
}

// recvSize serves MESSAGE_TYPE_RECVSIZE: the size of the waiting message
// in EBX, with DORECV; no DORECV when nothing waits.
func (b *Server) recvSize(c msgCall) uint16 {
	ch, r := c.ch, c.r
	if !ch.hasOut && ch.tclo != nil {
		ch.tclo.deliverLocked(ch)
	}
	if !ch.hasOut {
		return StatusSuccess
	}
	ch.outPos, ch.outSent = 0, false
	set32(&r.BX, uint32(len(ch.out)))
	r.DX = uint64(uint32(MsgSendSize)<<16 | uint32(uint16(r.DX)))
	return StatusSuccess | StatusDoRecv | c.hb
}

// recvPayload serves MESSAGE_TYPE_RECVPAYLOAD: the next four bytes of the
// waiting message in EBX; the guest's status in EBX says whether it took
// the previous ones.
func (b *Server) recvPayload(c msgCall) uint16 {
	ch, r := c.ch, c.r
	if !ch.hasOut || ch.outSent {
		return 0
	}
	if ch.cpt {
		ch.cpt = false
		ch.outPos = 0
		b.cpts.Add(1)
		return StatusCPT
	}
	if uint32(r.BX)&StatusSuccess == 0 {
		b.deliveryFailed(ch)
		return StatusSuccess
	}
	var w [4]byte
	k := copy(w[:], ch.out[ch.outPos:])
	ch.outPos += k
	if ch.outPos == len(ch.out) {
		ch.outSent = true
	}
	set32(&r.BX, binary.LittleEndian.Uint32(w[:]))
	r.DX = uint64(uint32(MsgSendPayload)<<16 | uint32(uint16(r.DX)))
	return StatusSuccess
}

// recvStatus serves MESSAGE_TYPE_RECVSTATUS: the guest acknowledges the
// message it has read (or reports it could not take it).
func (b *Server) recvStatus(c msgCall) uint16 {
	ch := c.ch
	if !ch.hasOut {
		return 0
	}
	if b.killHere(ch, KillAtRecvStatus, c.owner) {
		return 0
	}
	if ch.cpt {
		ch.cpt = false
		ch.outPos, ch.outSent = 0, false
		b.cpts.Add(1)
		return StatusCPT
	}
	if uint32(c.r.BX)&StatusSuccess == 0 || !ch.outSent {
		b.deliveryFailed(ch)
		return StatusSuccess
	}
	ch.out, ch.hasOut, ch.outPos, ch.outSent = nil, false, 0, false
	if ch.tclo != nil {
		ch.tclo.delivered = true
	}
	if !ch.rtStart.IsZero() {
		b.recordRTT(time.Since(ch.rtStart))
		ch.rtStart = time.Time{}
	}
	return StatusSuccess
}

// closeMsg serves MESSAGE_TYPE_CLOSE.
func (b *Server) closeMsg(c msgCall) uint16 {
	b.closeLocked(c.ch)
	return StatusSuccess
}
