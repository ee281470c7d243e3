// Package backdoor is the host side of the VMware backdoor as the ptrace
// trap (vmxsim/trap) presents it to a guest program: the low-bandwidth
// port's commands (GETVERSION, the time commands), the GuestRPC message
// channels on the low- and high-bandwidth ports, and the fault injection
// of a real VMX's channel (checkpoints, channel resets, guests killed at
// a chosen moment). RPCI messages go to the VMX core and TCLO channels to
// its driver, through the small vmx.Core interface; the register file
// (Regs) is what the trap reads from and writes to the traced process.
//
// The protocol facts it follows are summarised in docs/architecture.md,
// "The backdoor and its message channel".
package backdoor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// Backdoor constants, as the VMX defines them (open-vm-tools names them in
// backdoor_def.h and guest_msg_def.h).
const (
	Magic   = 0x564D5868 // "VMXh", in EAX on every call
	LBPort  = 0x5658     // low-bandwidth port: IN EAX, DX
	HBPort  = 0x5659     // high-bandwidth port: REP OUTSB / REP INSB
	Version = 6          // VERSION_MAGIC, returned by GETVERSION

	CmdGetVersion                = 10
	CmdGetTime                   = 23
	CmdStopCatchup               = 24
	CmdMessage                   = 30
	CmdGetHz                     = 45
	CmdGetTimeFull               = 46
	CmdGetTimeFullWithLag        = 55
	HBCmdMessage                 = 0
	MaxChannels                  = 128 // GUESTMSG_MAX_CHANNEL
	ProtoRPCI             uint32 = 0x49435052
	ProtoTCLO             uint32 = 0x4f4c4354
	FlagCookie            uint32 = 0x80000000

	// VMXTypeScalableServer is what GETVERSION reports in ECX: ESX.
	VMXTypeScalableServer = 2
)

// Message sub-types (ECX high 16 on a CmdMessage call).
const (
	MsgOpen = iota
	MsgSendSize
	MsgSendPayload
	MsgRecvSize
	MsgRecvPayload
	MsgRecvStatus
	MsgClose
)

// Message status bits (ECX high 16 on return, EBX high 16 for HB calls).
const (
	StatusSuccess  = 0x0001
	StatusDoRecv   = 0x0002
	StatusClosed   = 0x0004
	StatusUnsent   = 0x0008
	StatusCPT      = 0x0010
	StatusPowerOff = 0x0020
	StatusTimeout  = 0x0040
	StatusHB       = 0x0080
)

// Regs is the register file of one backdoor call: what the guest put in
// the registers and, after the call, what it finds there. Only the low 32
// bits are meaningful; results are written zero-extended, as a 32-bit
// register write on amd64 does. The ptrace trap and the unit tests share
// it; on arm64 X0..X6 map to AX..BP.
type Regs struct {
	AX, BX, CX, DX, SI, DI, BP uint64
}

// GuestMemory is the calling process's memory, for the high-bandwidth
// calls: REP OUTSB reads the message from it, REP INSB writes into it.
type GuestMemory interface {
	ReadAt(p []byte, addr uint64) error
	WriteAt(p []byte, addr uint64) error
}

// Options configure a Server.
type Options struct {
	// NoHB withholds the HB status bit, so guests use the low-bandwidth
	// path (vmxsim run --lb); HB calls are then refused.
	NoHB bool
	// VMXType is what GETVERSION reports in ECX; 0 means
	// VMXTypeScalableServer.
	VMXType uint32
	// Now is the host clock of the time commands; nil means time.Now.
	Now func() time.Time
	// MaxTimeLag is the lag the time commands report in ECX, in µs; 0
	// means 500000.
	MaxTimeLag uint32
	// Unsupported lists backdoor commands to answer as unknown (EAX =
	// 0xFFFFFFFF), to exercise a guest's fallbacks.
	Unsupported []uint16
	// KeepDeadChannels keeps the channels of a guest process that has
	// exited (CloseOwner does nothing), as the VMX does: it cannot tell
	// guest processes apart, so a channel, and the reply waiting on it,
	// last until the channel is closed, the guest is reset or a
	// checkpoint invalidates it. By default they are closed, so that a
	// long test session cannot run out of channels.
	KeepDeadChannels bool
	// Kill, if set, kills a guest process (given its owner number) for
	// the kill faults (KillAt); vmxsim run sends SIGKILL.
	Kill func(owner int)
}

// Kill fault moments (KillAt).
const (
	// KillAtSendSize kills a guest as it announces a message: nothing of
	// the message reaches the VMX.
	KillAtSendSize = "sendsize"
	// KillAtSent kills a guest right after the VMX has handled its
	// message (and posted the reply), before the guest hears of it.
	KillAtSent = "sent"
	// KillAtRecvStatus kills a guest as it acknowledges a reply it has
	// read: the acknowledgement is not taken, the reply stays posted.
	KillAtRecvStatus = "recvstatus"
)

// rttRing holds the last RPCI round-trip times.
const rttRing = 4096

// Server is the host side of the I/O-port backdoor of one VM, as the
// ptrace trap (vmxsim run) presents it to the guest: GETVERSION, the time
// commands and the GuestRPC message channels. RPCI channels are answered
// by the core's Answer; TCLO channels are driven by the core's ServeTCLO,
// which Run starts for each TCLO channel the guest opens.
//
// The call methods (LB, HBOut, HBIn) never block on the guest and never
// panic on what the guest puts in its registers: a bad call gets a failure
// status, as from the VMX.
type Server struct {
	core vmx.Core
	lg   *slog.Logger
	opts Options

	lb, hbOut, hbIn, opens, cpts, kills atomic.Uint64
	timeReads, stopCatchups             atomic.Uint64
	clockOffset                         atomic.Int64 // ns added to opts.Now

	mu       sync.Mutex
	chans    [MaxChannels]*bdChannel
	rtts     []time.Duration // ring of the last rttRing RPCI round trips
	rttCount uint64
	ctx      context.Context // Run's, or Background before Run
	running  bool
	starting []*bdTCLO // TCLO peers waiting for Run to serve them
	wake     chan struct{}
	killAt   string // an armed kill fault: the moment,
	killPass int    // and how many such moments to let pass first
}

// bdChannel is one open message channel. Guarded by Server.mu.
type bdChannel struct {
	id                 uint16
	proto              uint32
	cookieHi, cookieLo uint32
	owner              int
	closed             bool

	// Guest to host: a message announced by SENDSIZE.
	sending bool
	sendLen int
	sendBuf []byte

	// Host to guest: the message waiting for the guest's receive.
	out     []byte
	hasOut  bool
	outPos  int
	outSent bool // the guest has read it all and owes RECVSTATUS

	cpt     bool // a checkpoint is pending: fail the next mid-transfer call
	tclo    *bdTCLO
	rtStart time.Time // SENDSIZE of the RPCI request being answered
}

// New returns the backdoor of core and reports its counters in the core's
// state. TCLO channels opened by the guest are served once Run runs.
func New(core vmx.Core, opts Options) *Server {
	if opts.VMXType == 0 {
		opts.VMXType = VMXTypeScalableServer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxTimeLag == 0 {
		opts.MaxTimeLag = 500000
	}
	b := &Server{core: core, lg: core.Logger(), opts: opts, ctx: context.Background(), wake: make(chan struct{}, 1)}
	core.ReportBackdoor(b.Stats)
	return b
}

// Run serves the TCLO channels the guest opens (one core ServeTCLO each)
// until ctx ends; then it closes every channel and returns after every
// session has ended.
func (b *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	b.mu.Lock()
	b.ctx = ctx
	b.running = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running = false
		b.ctx = context.Background()
		b.starting = nil
		for _, ch := range b.chans {
			if ch != nil {
				b.closeLocked(ch)
			}
		}
		b.mu.Unlock()
		wg.Wait()
	}()
	for {
		b.mu.Lock()
		start := b.starting
		b.starting = nil
		b.mu.Unlock()
		for _, p := range start {
			wg.Go(func() {
				if err := b.core.ServeTCLO(ctx, p); err != nil && ctx.Err() == nil {
					b.lg.Info("backdoor tclo session ended", "channel", p.ch.id, "err", err)
				}
			})
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}
	}
}

// now is the host clock of the time commands.
func (b *Server) now() time.Time {
	return b.opts.Now().Add(time.Duration(b.clockOffset.Load()))
}

// SetClockOffset sets the host clock of the time commands d ahead of the
// real time (behind when negative), as after a resume or a vMotion to a
// host whose clock differs: the guest then sees a clock to correct
// without anything touching the real clock.
func (b *Server) SetClockOffset(d time.Duration) {
	b.clockOffset.Store(int64(d))
	b.core.Remark("Backdoor: host clock offset set to %v", d)
}

// Stats returns the call counters.
func (b *Server) Stats() vmx.BackdoorStats {
	s := vmx.BackdoorStats{LB: b.lb.Load(), HBOut: b.hbOut.Load(), HBIn: b.hbIn.Load(), Opens: b.opens.Load(), CPTs: b.cpts.Load(), Kills: b.kills.Load(), NoHB: b.opts.NoHB,
		TimeReads: b.timeReads.Load(), StopCatchups: b.stopCatchups.Load(), ClockOffset: time.Duration(b.clockOffset.Load()).String()}
	b.mu.Lock()
	for _, ch := range b.chans {
		if ch != nil {
			s.Channels++
		}
	}
	s.RPCIRoundTrips = b.rttCount
	rtts := slices.Clone(b.rtts)
	b.mu.Unlock()
	if len(rtts) > 0 {
		slices.Sort(rtts)
		s.RPCIRoundTripMedianUs = float64(rtts[len(rtts)/2].Nanoseconds()) / 1e3
	}
	return s
}

// InjectCheckpoint simulates a checkpoint (suspend/resume, snapshot,
// vMotion): on every channel open now, idle or in the middle of a
// transfer, the next payload call (SENDPAYLOAD, RECVPAYLOAD, RECVSTATUS or
// an HB transfer, of the transfer under way or else of the next one) fails
// with the CPT status and the transfer starts over; a message being sent
// is dropped, a message being received is kept for the retry. The size
// calls that start a transfer do not consume it: open-vm-tools only checks
// CPT on the payload calls.
func (b *Server) InjectCheckpoint() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.chans {
		if ch != nil {
			ch.cpt = true
		}
	}
}

// ResetChannels closes every channel, as a VMX restart does: the guest's
// next call on an old channel fails and it must reopen.
func (b *Server) ResetChannels() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.chans {
		if ch != nil {
			b.closeLocked(ch)
		}
	}
	b.core.Remark("GuestRPC: all backdoor channels reset")
}

// CloseOwner closes the channels opened by owner (the trap passes the
// guest's process id), when that process has gone; with KeepDeadChannels
// it does nothing.
func (b *Server) CloseOwner(owner int) {
	if b.opts.KeepDeadChannels {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.chans {
		if ch != nil && ch.owner == owner {
			b.closeLocked(ch)
		}
	}
}

// KillAt arms a kill fault: the guest process whose RPCI message reaches
// moment at (KillAtSendSize, KillAtSent or KillAtRecvStatus) after that
// many moments have passed is killed there, as a guest SIGKILLed at that
// instant. One kill per arming. It needs Options.Kill.
func (b *Server) KillAt(at string, after int) error {
	switch at {
	case KillAtSendSize, KillAtSent, KillAtRecvStatus:
	default:
		return fmt.Errorf("backdoor: unknown kill moment %q (want %s, %s or %s)", at, KillAtSendSize, KillAtSent, KillAtRecvStatus)
	}
	if b.opts.Kill == nil {
		return errors.New("backdoor: kill faults need a guest to kill (vmxsim run)")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.killAt, b.killPass = at, max(after, 0)
	return nil
}

// killHere reports whether the armed kill fault fires at this moment of an
// RPCI message, and if so kills owner. Preconditions: b.mu is held.
func (b *Server) killHere(ch *bdChannel, at string, owner int) bool {
	if b.killAt != at || ch.proto != ProtoRPCI {
		return false
	}
	if b.killPass > 0 {
		b.killPass--
		return false
	}
	b.killAt = ""
	b.kills.Add(1)
	b.core.Remark("Fault injection: guest process killed at %s on channel %d", at, ch.id)
	b.opts.Kill(owner)
	return true
}

// LB serves an IN EAX, DX on the low-bandwidth port for owner.
func (b *Server) LB(r *Regs, owner int) {
	b.lb.Add(1)
	if uint32(r.AX) != Magic {
		set32(&r.AX, 0xFFFFFFFF)
		return
	}
	cmd := uint16(r.CX)
	if slices.Contains(b.opts.Unsupported, cmd) {
		set32(&r.AX, 0xFFFFFFFF)
		return
	}
	switch cmd {
	case CmdGetVersion:
		set32(&r.AX, Version)
		set32(&r.BX, Magic)
		set32(&r.CX, b.opts.VMXType)
	case CmdGetTime:
		b.timeReads.Add(1)
		now := b.now()
		set32(&r.AX, uint32(now.Unix()))
		set32(&r.BX, uint32(now.Nanosecond()/1000))
		set32(&r.CX, b.opts.MaxTimeLag)
	case CmdGetTimeFull, CmdGetTimeFullWithLag:
		// EAX is left holding the magic: that is how the guest knows the
		// command is supported.
		b.timeReads.Add(1)
		now := b.now()
		sec := uint64(now.Unix())
		set32(&r.SI, uint32(sec>>32))
		set32(&r.DX, uint32(sec))
		set32(&r.BX, uint32(now.Nanosecond()/1000))
		set32(&r.CX, b.opts.MaxTimeLag)
		if cmd == CmdGetTimeFullWithLag {
			set32(&r.DI, 0) // no interrupt lag here
		}
	case CmdStopCatchup:
		// Nothing to catch up on; counted, so tests see the guest ask.
		b.stopCatchups.Add(1)
	case CmdGetHz:
		set32(&r.BX, 0xFFFFFFFF) // unsupported, as the kernel expects to read it
	case CmdMessage:
		b.message(r, owner)
	default:
		ax, bx, ok := b.core.HostCall(cmd, uint32(r.BX))
		if !ok {
			set32(&r.AX, 0xFFFFFFFF)
			return
		}
		set32(&r.AX, ax)
		set32(&r.BX, bx)
	}
}

// HBOut serves a REP OUTSB on the high-bandwidth port: the guest sends the
// ECX bytes at ESI/RSI as its whole message.
func (b *Server) HBOut(r *Regs, owner int, mem GuestMemory) {
	b.hbOut.Add(1)
	status := b.hbOutStatus(r, owner, mem)
	setHBStatus(r, status)
}

// HBIn serves a REP INSB on the high-bandwidth port: the host writes the
// waiting message to the ECX bytes at EDI/RDI.
func (b *Server) HBIn(r *Regs, owner int, mem GuestMemory) {
	b.hbIn.Add(1)
	status := b.hbInStatus(r, owner, mem)
	setHBStatus(r, status)
}

func setHBStatus(r *Regs, status uint16) {
	set32(&r.BX, uint32(status)<<16|uint32(uint16(r.BX)))
}

func (b *Server) hbOutStatus(r *Regs, owner int, mem GuestMemory) uint16 {
	if uint32(r.AX) != Magic || uint16(r.BX) != HBCmdMessage || b.opts.NoHB {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// HB out: EDI = cookie low, EBP = cookie high.
	ch := b.lookup(uint16(r.DX>>16), uint32(r.BP), uint32(r.DI))
	if ch == nil || !ch.sending {
		return 0
	}
	if ch.cpt {
		ch.cpt = false
		ch.sending = false
		ch.sendBuf = nil
		b.cpts.Add(1)
		return StatusCPT
	}
	n := int(uint32(r.CX))
	if n != ch.sendLen-len(ch.sendBuf) {
		b.lg.Warn("backdoor: HB send of wrong length", "channel", ch.id, "count", n, "announced", ch.sendLen)
		ch.sending = false
		return 0
	}
	buf := make([]byte, n)
	if err := mem.ReadAt(buf, r.SI); err != nil {
		b.lg.Warn("backdoor: HB send: guest memory unreadable", "channel", ch.id, "err", err)
		ch.sending = false
		return 0
	}
	ch.sendBuf = append(ch.sendBuf, buf...)
	if b.received(ch, owner) {
		return 0 // killed: it never sees this
	}
	return StatusSuccess
}

func (b *Server) hbInStatus(r *Regs, owner int, mem GuestMemory) uint16 {
	if uint32(r.AX) != Magic || uint16(r.BX) != HBCmdMessage || b.opts.NoHB {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// HB in: ESI = cookie high, EBP = cookie low.
	ch := b.lookup(uint16(r.DX>>16), uint32(r.SI), uint32(r.BP))
	if ch == nil || !ch.hasOut {
		return 0
	}
	if ch.cpt {
		ch.cpt = false
		ch.outPos, ch.outSent = 0, false
		b.cpts.Add(1)
		return StatusCPT
	}
	n := int(uint32(r.CX))
	if n != len(ch.out)-ch.outPos {
		b.lg.Warn("backdoor: HB receive of wrong length", "channel", ch.id, "count", n, "message", len(ch.out))
		return 0
	}
	if err := mem.WriteAt(ch.out[ch.outPos:], r.DI); err != nil {
		b.lg.Warn("backdoor: HB receive: guest memory unwritable", "channel", ch.id, "err", err)
		return 0
	}
	ch.outPos = len(ch.out)
	ch.outSent = true
	return StatusSuccess
}

// recordRTT keeps one RPCI round-trip time. Preconditions: b.mu is held.
func (b *Server) recordRTT(d time.Duration) {
	if len(b.rtts) < rttRing {
		b.rtts = append(b.rtts, d)
	} else {
		b.rtts[b.rttCount%rttRing] = d
	}
	b.rttCount++
}

// open serves MESSAGE_TYPE_OPEN. Preconditions: b.mu is held.
func (b *Server) open(r *Regs, owner int) {
	arg := uint32(r.BX)
	proto := arg &^ FlagCookie
	slot := slices.Index(b.chans[:], nil)
	if slot < 0 {
		b.lg.Warn("backdoor: all 128 channels in use; open refused", "owner", owner)
		setStatus(r, 0)
		return
	}
	ch := &bdChannel{id: uint16(slot), proto: proto, owner: owner}
	if arg&FlagCookie != 0 {
		ch.cookieHi, ch.cookieLo = rand.Uint32(), rand.Uint32()
	}
	if proto == ProtoTCLO {
		ch.tclo = &bdTCLO{b: b, ch: ch, replies: make(chan []byte, 1), done: make(chan struct{})}
		b.starting = append(b.starting, ch.tclo)
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	b.chans[slot] = ch
	b.opens.Add(1)
	r.DX = uint64(uint32(slot)<<16 | uint32(uint16(r.DX)))
	set32(&r.SI, ch.cookieHi)
	set32(&r.DI, ch.cookieLo)
	setStatus(r, StatusSuccess)
}

// lookup returns the open channel id if the cookie matches (channels opened
// without the cookie flag have cookie 0). Preconditions: b.mu is held.
func (b *Server) lookup(id uint16, hi, lo uint32) *bdChannel {
	if int(id) >= len(b.chans) {
		return nil
	}
	ch := b.chans[id]
	if ch == nil || ch.cookieHi != hi || ch.cookieLo != lo {
		return nil
	}
	return ch
}

// received handles a complete guest message from owner; it reports
// whether a kill fault then killed owner. Preconditions: b.mu is held.
func (b *Server) received(ch *bdChannel, owner int) (killed bool) {
	msg := ch.sendBuf
	ch.sending, ch.sendBuf = false, nil
	switch {
	case ch.tclo != nil:
		ch.tclo.replyLocked(msg)
	case ch.proto == ProtoRPCI:
		// A new request discards a reply the guest never collected. The
		// core's handlers never call back into the backdoor, so answering
		// under b.mu is safe; it serializes guest calls as vCPUs are.
		ctx := b.ctx
		reply, dropped := b.core.Answer(ctx, vmx.Caller{Transport: "backdoor"}, msg)
		if dropped {
			// Fault injection dropped it as a message cut short: no
			// reply, as if it had never arrived whole.
			ch.out, ch.hasOut, ch.outPos, ch.outSent = nil, false, 0, false
			return false
		}
		ch.out, ch.hasOut, ch.outPos, ch.outSent = reply, true, 0, false
		return b.killHere(ch, KillAtSent, owner)
	default:
		b.lg.Debug("backdoor: message on a channel of unknown protocol dropped", "proto", fmt.Sprintf("%#x", ch.proto))
	}
	return false
}

// deliveryFailed handles a guest that reported it could not take the
// message (RECVPAYLOAD or RECVSTATUS with status 0): the message is
// dropped, and a TCLO exchange waiting for it fails. Preconditions: b.mu
// is held.
func (b *Server) deliveryFailed(ch *bdChannel) {
	b.lg.Info("backdoor: guest failed to receive a message", "channel", ch.id, "len", len(ch.out))
	ch.out, ch.hasOut, ch.outPos, ch.outSent = nil, false, 0, false
	if ch.tclo != nil {
		ch.tclo.fail(errors.New("guest could not receive the command"))
	}
}

// closeLocked frees a channel. Preconditions: b.mu is held.
func (b *Server) closeLocked(ch *bdChannel) {
	if ch.closed {
		return
	}
	ch.closed = true
	b.chans[ch.id] = nil
	if ch.tclo != nil {
		ch.tclo.closeLocked()
		if i := slices.Index(b.starting, ch.tclo); i >= 0 {
			b.starting = slices.Delete(b.starting, i, i+1)
		}
	}
}

func setStatus(r *Regs, status uint16) {
	set32(&r.CX, uint32(status)<<16|uint32(uint16(r.CX)))
}

func set32(reg *uint64, v uint32) { *reg = uint64(v) }
