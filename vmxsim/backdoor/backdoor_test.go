package backdoor

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// fakeMem is guest memory: a flat buffer at address base.
type fakeMem struct {
	base uint64
	buf  []byte
}

func (m *fakeMem) ReadAt(p []byte, addr uint64) error {
	if addr < m.base || addr+uint64(len(p)) > m.base+uint64(len(m.buf)) {
		return errors.New("fault")
	}
	copy(p, m.buf[addr-m.base:])
	return nil
}

func (m *fakeMem) WriteAt(p []byte, addr uint64) error {
	if addr < m.base || addr+uint64(len(p)) > m.base+uint64(len(m.buf)) {
		return errors.New("fault")
	}
	copy(m.buf[addr-m.base:], p)
	return nil
}

// rawGuest is a register-level guest written from the protocol text, to
// test the host state machine call by call (the real guest is
// rpc/backdoor, tested against this host in its own package).
type rawGuest struct {
	t     *testing.T
	b     *Server
	owner int
	mem   *fakeMem
	calls int
	hook  func(n int) // called before each message call, with its number
}

type gch struct{ id, hi, lo uint32 }

func (g *rawGuest) lb(r Regs) Regs {
	r.AX = Magic
	r.DX = r.DX&^0xffff | LBPort
	g.b.LB(&r, g.owner)
	return r
}

func (g *rawGuest) msg(c gch, sub uint16, bx uint32) Regs {
	g.calls++
	if g.hook != nil {
		g.hook(g.calls)
	}
	return g.lb(Regs{BX: uint64(bx), CX: uint64(sub)<<16 | CmdMessage, DX: uint64(c.id) << 16, SI: uint64(c.hi), DI: uint64(c.lo)})
}

func status(r Regs) uint16 { return uint16(r.CX >> 16) }

func (g *rawGuest) open(proto uint32, cookie bool) (gch, bool) {
	bx := proto
	if cookie {
		bx |= FlagCookie
	}
	r := g.lb(Regs{BX: uint64(bx), CX: MsgOpen<<16 | CmdMessage})
	if status(r)&StatusSuccess == 0 {
		return gch{}, false
	}
	return gch{uint32(r.DX >> 16), uint32(r.SI), uint32(r.DI)}, true
}

// send sends msg over LB or HB as the host advertises; it reports the
// host's statuses instead of retrying, so tests see each step.
func (g *rawGuest) send(c gch, msg []byte) error {
	r := g.msg(c, MsgSendSize, uint32(len(msg)))
	st := status(r)
	if st&StatusSuccess == 0 {
		return fmt.Errorf("sendsize status %#x", st)
	}
	if st&StatusHB != 0 && len(msg) > 0 {
		g.calls++
		if g.hook != nil {
			g.hook(g.calls)
		}
		copy(g.mem.buf, msg)
		hr := Regs{AX: Magic, BX: StatusSuccess << 16, CX: uint64(len(msg)), DX: uint64(c.id)<<16 | HBPort, SI: g.mem.base, DI: uint64(c.lo), BP: uint64(c.hi)}
		g.b.HBOut(&hr, g.owner, g.mem)
		if s := uint16(hr.BX >> 16); s&StatusSuccess == 0 {
			return fmt.Errorf("hb out status %#x", s)
		}
		return nil
	}
	for i := 0; i < len(msg); i += 4 {
		var w [4]byte
		copy(w[:], msg[i:])
		r := g.msg(c, MsgSendPayload, binary.LittleEndian.Uint32(w[:]))
		if s := status(r); s&StatusSuccess == 0 {
			return fmt.Errorf("sendpayload status %#x", s)
		}
	}
	return nil
}

func (g *rawGuest) recv(c gch) ([]byte, error) {
	r := g.msg(c, MsgRecvSize, 0)
	st := status(r)
	if st&StatusSuccess == 0 {
		return nil, fmt.Errorf("recvsize status %#x", st)
	}
	if st&StatusDoRecv == 0 {
		return nil, nil
	}
	if uint16(r.DX>>16) != MsgSendSize {
		return nil, fmt.Errorf("recvsize type %d", r.DX>>16)
	}
	n := int(uint32(r.BX))
	out := make([]byte, 0, n)
	if st&StatusHB != 0 && n > 0 {
		g.calls++
		if g.hook != nil {
			g.hook(g.calls)
		}
		hr := Regs{AX: Magic, BX: StatusSuccess << 16, CX: uint64(n), DX: uint64(c.id)<<16 | HBPort, SI: uint64(c.hi), DI: g.mem.base, BP: uint64(c.lo)}
		g.b.HBIn(&hr, g.owner, g.mem)
		if s := uint16(hr.BX >> 16); s&StatusSuccess == 0 {
			return nil, fmt.Errorf("hb in status %#x", s)
		}
		out = append(out, g.mem.buf[:n]...)
	} else {
		for len(out) < n {
			r := g.msg(c, MsgRecvPayload, StatusSuccess)
			if s := status(r); s&StatusSuccess == 0 {
				return nil, fmt.Errorf("recvpayload status %#x", s)
			}
			if uint16(r.DX>>16) != MsgSendPayload {
				return nil, fmt.Errorf("recvpayload type %d", r.DX>>16)
			}
			var w [4]byte
			binary.LittleEndian.PutUint32(w[:], uint32(r.BX))
			out = append(out, w[:min(4, n-len(out))]...)
		}
	}
	if s := status(g.msg(c, MsgRecvStatus, StatusSuccess)); s&StatusSuccess == 0 {
		return nil, fmt.Errorf("recvstatus status %#x", s)
	}
	return out, nil
}

// newCore returns a VMX core for the backdoor to serve.
func newCore(t *testing.T, opts vmxsim.Options) *vmxsim.Core {
	t.Helper()
	c, err := vmxsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newBackdoor(t *testing.T, opts Options) (*vmxsim.Core, *Server, *rawGuest) {
	c := newCore(t, vmxsim.Options{})
	b := New(c, opts)
	return c, b, &rawGuest{t: t, b: b, owner: 100, mem: &fakeMem{base: 0x10000, buf: make([]byte, 70<<10)}}
}

func testValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		const pat = "abcdefghij klmnop\xffZ"
		v[i] = pat[i%len(pat)]
	}
	return v
}

func TestBackdoorGetVersionAndTime(t *testing.T) {
	now := time.Unix(0x1_2345_6789, 654321000)
	_, b, g := newBackdoor(t, Options{Now: func() time.Time { return now }})
	r := g.lb(Regs{BX: ^uint64(Magic), CX: 0xFFFF<<16 | CmdGetVersion})
	if uint32(r.AX) != Version || uint32(r.BX) != Magic || uint32(r.CX) != VMXTypeScalableServer {
		t.Fatalf("GETVERSION = %+v", r)
	}
	r = g.lb(Regs{CX: CmdGetTimeFullWithLag})
	if uint32(r.AX) != Magic || uint32(r.SI) != 1 || uint32(r.DX) != 0x23456789 || uint32(r.BX) != 654321 || uint32(r.CX) != 500000 || uint32(r.DI) != 0 {
		t.Fatalf("GETTIMEFULL_WITH_LAG = %+v", r)
	}
	r = g.lb(Regs{CX: CmdGetTimeFull, DI: 77})
	if uint32(r.AX) != Magic || uint32(r.SI) != 1 || uint32(r.DX) != 0x23456789 || r.DI != 77 {
		t.Fatalf("GETTIMEFULL = %+v", r)
	}
	r = g.lb(Regs{CX: CmdGetTime})
	if uint32(r.AX) != 0x23456789 || uint32(r.BX) != 654321 {
		t.Fatalf("GETTIME = %+v", r)
	}
	if r = g.lb(Regs{CX: 9999}); uint32(r.AX) != 0xFFFFFFFF {
		t.Fatalf("unknown command left EAX %#x", r.AX)
	}
	// Without the magic the call is not the backdoor.
	r = Regs{AX: 1, CX: CmdGetVersion, DX: LBPort}
	b.LB(&r, 1)
	if uint32(r.AX) != 0xFFFFFFFF {
		t.Fatalf("no magic: %+v", r)
	}
	// The real clock by default.
	_, _, g2 := newBackdoor(t, Options{Unsupported: []uint16{CmdGetTimeFullWithLag}})
	if r = g2.lb(Regs{CX: CmdGetTimeFullWithLag}); uint32(r.AX) == Magic {
		t.Fatal("unsupported WITH_LAG still answered")
	}
	r = g2.lb(Regs{CX: CmdGetTimeFull})
	got := time.Unix(int64(uint64(uint32(r.SI))<<32|uint64(uint32(r.DX))), int64(uint32(r.BX))*1000)
	if d := time.Since(got); d < -time.Second || d > time.Minute {
		t.Fatalf("GETTIMEFULL real clock off by %v", d)
	}
}

func TestBackdoorRPCIEveryLength(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		t.Run(fmt.Sprintf("noHB=%v", noHB), func(t *testing.T) {
			c, b, g := newBackdoor(t, Options{NoHB: noHB})
			ch, ok := g.open(ProtoRPCI, true)
			if !ok || ch.hi == 0 && ch.lo == 0 {
				t.Fatalf("open: %v %+v", ok, ch)
			}
			for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 61, 62, 63, 64, 60 << 10} {
				v := testValue(n)
				req := append([]byte("info-set guestinfo.k "), v...)
				if err := g.send(ch, req); err != nil {
					t.Fatalf("len %d: %v", n, err)
				}
				if reply, err := g.recv(ch); err != nil || string(reply) != "1 " {
					t.Fatalf("len %d: reply %q %v", n, reply, err)
				}
				if c.State().Guestinfo["k"] != string(v) {
					t.Fatalf("len %d: stored value differs", n)
				}
				if err := g.send(ch, []byte("info-get guestinfo.k")); err != nil {
					t.Fatal(err)
				}
				reply, err := g.recv(ch)
				if err != nil || !bytes.Equal(reply, append([]byte("1 "), v...)) {
					t.Fatalf("len %d: info-get returned %d bytes, %v", n, len(reply), err)
				}
			}
			// Nothing more waiting: RECVSIZE says so.
			if reply, err := g.recv(ch); err != nil || reply != nil {
				t.Fatalf("idle receive: %q %v", reply, err)
			}
			st := b.Stats()
			if st.RPCIRoundTrips != 28 || st.RPCIRoundTripMedianUs <= 0 {
				t.Fatalf("round trips %d, median %v µs", st.RPCIRoundTrips, st.RPCIRoundTripMedianUs)
			}
			if noHB && (st.HBIn+st.HBOut != 0 || !st.NoHB) || !noHB && st.HBIn == 0 {
				t.Fatalf("stats %+v", st)
			}
			if s := status(g.msg(ch, MsgClose, 0)); s&StatusSuccess == 0 {
				t.Fatal("close failed")
			}
			if err := g.send(ch, []byte("log x")); err == nil {
				t.Fatal("send on a closed channel succeeded")
			}
		})
	}
}

func TestBackdoorRefusals(t *testing.T) {
	_, b, g := newBackdoor(t, Options{})
	ch, _ := g.open(ProtoRPCI, true)
	// A wrong cookie is another guest's channel.
	bad := ch
	bad.lo++
	if err := g.send(bad, []byte("log x")); err == nil {
		t.Fatal("wrong cookie accepted")
	}
	// Over 64 KiB is refused at SENDSIZE.
	if s := status(g.msg(ch, MsgSendSize, vmx.MaxGuestMessage+1)); s&StatusSuccess != 0 {
		t.Fatal("oversized message accepted")
	}
	// Payload without a size, receive with nothing waiting.
	if s := status(g.msg(ch, MsgSendPayload, 0)); s&StatusSuccess != 0 {
		t.Fatal("payload without size accepted")
	}
	if s := status(g.msg(ch, MsgRecvPayload, StatusSuccess)); s&StatusSuccess != 0 {
		t.Fatal("recvpayload with nothing waiting accepted")
	}
	if s := status(g.msg(ch, 77, 0)); s&StatusSuccess != 0 {
		t.Fatal("unknown sub-type accepted")
	}
	// HB with the wrong length or unreadable memory fails cleanly.
	g.msg(ch, MsgSendSize, 10)
	hr := Regs{AX: Magic, BX: StatusSuccess << 16, CX: 9, DX: uint64(ch.id)<<16 | HBPort, SI: g.mem.base, DI: uint64(ch.lo), BP: uint64(ch.hi)}
	b.HBOut(&hr, 1, g.mem)
	if uint16(hr.BX>>16)&StatusSuccess != 0 {
		t.Fatal("HB out of the wrong length accepted")
	}
	g.msg(ch, MsgSendSize, 10)
	hr = Regs{AX: Magic, BX: StatusSuccess << 16, CX: 10, DX: uint64(ch.id)<<16 | HBPort, SI: 1, DI: uint64(ch.lo), BP: uint64(ch.hi)}
	b.HBOut(&hr, 1, g.mem)
	if uint16(hr.BX>>16)&StatusSuccess != 0 {
		t.Fatal("HB out from unreadable memory accepted")
	}
	// The channel still works afterwards.
	if err := g.send(ch, []byte("info-get guestinfo.none")); err != nil {
		t.Fatal(err)
	}
	if r, err := g.recv(ch); err != nil || string(r) != vmxsim.ReplyNoValue {
		t.Fatalf("%q %v", r, err)
	}
	// Without the cookie flag the cookie is 0 and still checked.
	nc, ok := g.open(ProtoRPCI, false)
	if !ok || nc.hi != 0 || nc.lo != 0 {
		t.Fatalf("cookieless open %+v", nc)
	}
	if err := g.send(nc, []byte("log y")); err != nil {
		t.Fatal(err)
	}
}

func TestBackdoorChannelLimitAndOwners(t *testing.T) {
	_, b, g := newBackdoor(t, Options{})
	var chans []gch
	for i := range MaxChannels {
		g.owner = 1 + i%2
		ch, ok := g.open(ProtoRPCI, true)
		if !ok {
			t.Fatalf("open %d failed", i)
		}
		chans = append(chans, ch)
	}
	if _, ok := g.open(ProtoRPCI, true); ok {
		t.Fatal("129th channel opened")
	}
	if st := b.Stats(); st.Channels != MaxChannels {
		t.Fatalf("stats %+v", st)
	}
	b.CloseOwner(2) // the process has gone
	if st := b.Stats(); st.Channels != MaxChannels/2 {
		t.Fatalf("after CloseOwner: %+v", st)
	}
	if err := g.send(chans[1], []byte("log x")); err == nil {
		t.Fatal("dead owner's channel still open")
	}
	if err := g.send(chans[0], []byte("log x")); err != nil {
		t.Fatal(err)
	}
	b.ResetChannels()
	if err := g.send(chans[0], []byte("log x")); err == nil {
		t.Fatal("channel survived a reset")
	}
	if _, ok := g.open(ProtoRPCI, true); !ok {
		t.Fatal("reopen after reset failed")
	}
}

// TestBackdoorCheckpoint injects a checkpoint before every call of a round
// trip in turn: the next payload call (of the transfer under way, or of
// the next one when the channel is idle or between transfers) fails with
// CPT, the guest restarts the transfer, and the request is answered
// exactly once.
func TestBackdoorCheckpoint(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		c, b, g := newBackdoor(t, Options{NoHB: noHB})
		var logged int
		c.HandleRPCI("count", func(ctx context.Context, caller vmx.Caller, args []byte) []byte {
			logged++
			return append([]byte("1 "), args...)
		})
		ch, _ := g.open(ProtoRPCI, true)
		req := append([]byte("count "), testValue(13)...)
		cpts := 0
		for k := 1; ; k++ {
			logged = 0
			g.calls, g.hook = 0, func(n int) {
				if n == k {
					b.InjectCheckpoint()
				}
			}
			var sawCPT bool
			var reply []byte
			for try := 0; try < 3; try++ {
				err := g.send(ch, req)
				if err == nil {
					reply, err = g.recv(ch)
				}
				if err == nil {
					break
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%#x", StatusCPT)) {
					t.Fatalf("noHB=%v k=%d: %v", noHB, k, err)
				}
				sawCPT = true
				// The guest restarts from SENDSIZE; a receive
				// interrupted by CPT restarts from RECVSIZE with the
				// reply still waiting.
				if strings.Contains(err.Error(), "recv") || strings.Contains(err.Error(), "hb in") {
					reply, err = g.recv(ch)
					if err != nil {
						t.Fatalf("noHB=%v k=%d: receive retry: %v", noHB, k, err)
					}
					break
				}
			}
			if !bytes.Equal(reply, append([]byte("1 "), req[6:]...)) || logged != 1 {
				t.Fatalf("noHB=%v k=%d: reply %q, handler ran %d times", noHB, k, reply, logged)
			}
			if sawCPT {
				cpts++
			}
			if k > g.calls+1 {
				break
			}
		}
		// A checkpoint before any call is hit: one before a payload
		// call fails that call, one before SENDSIZE or RECVSIZE (an idle
		// channel: k=1 is before anything was sent) fails the payload
		// call that follows. So every call counts: SENDSIZE, HB out,
		// RECVSIZE, HB in and RECVSTATUS; or SENDSIZE, 5 SENDPAYLOADs
		// (19 bytes), RECVSIZE, 4 RECVPAYLOADs (15 bytes) and RECVSTATUS.
		if want := map[bool]int{false: 5, true: 12}[noHB]; cpts != want {
			t.Errorf("noHB=%v: %d checkpoints hit, want %d", noHB, cpts, want)
		}
	}
}

// TestBackdoorTCLO drives Core.ServeTCLO over a backdoor TCLO channel with
// a polling guest: reset, ping, Set_Option, Capabilities_Register, then a
// command from SendTCLO.
func TestBackdoorTCLO(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) { testBackdoorTCLO(t, noHB) })
	}
}

// testBackdoorTCLO is TestBackdoorTCLO in fake time: the guest polls
// every 2 ms, as guests poll an idle channel.
func testBackdoorTCLO(t *testing.T, noHB bool) {
	c := newCore(t, vmxsim.Options{PingInterval: 50 * time.Millisecond, ExchangeTimeout: 5 * time.Second})
	b := New(c, Options{NoHB: noHB})
	g := &rawGuest{t: t, b: b, owner: 7, mem: &fakeMem{base: 0x1000, buf: make([]byte, 70<<10)}}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { b.Run(ctx) })

	ch, ok := g.open(ProtoTCLO, true)
	if !ok {
		t.Fatal("open tclo")
	}
	var got []string
	pending := []byte{}
	deadline := time.Now().Add(10 * time.Second)
	var echoed bool
	for !echoed && time.Now().Before(deadline) {
		if err := g.send(ch, pending); err != nil {
			t.Fatal(err)
		}
		msg, err := g.recv(ch)
		if err != nil {
			t.Fatal(err)
		}
		pending = []byte{}
		if msg == nil {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		got = append(got, string(msg))
		switch {
		case string(msg) == "reset":
			pending = []byte("OK ATR toolbox")
		case strings.HasPrefix(string(msg), "Echo "):
			pending = append([]byte("OK "), msg[5:]...)
			echoed = true
		default:
			pending = []byte("OK ")
		}
		if string(msg) == "Capabilities_Register" {
			wg.Go(func() {
				r, err := c.SendTCLO(ctx, "Echo hi\x00there")
				if err != nil || string(r) != "OK hi\x00there" {
					t.Errorf("SendTCLO = %q %v", r, err)
				}
			})
		}
	}
	// Send the last reply so SendTCLO returns.
	if err := g.send(ch, pending); err != nil {
		t.Fatal(err)
	}
	if len(got) < 3 || got[0] != "reset" || got[1] != "ping" || !strings.HasPrefix(got[2], "Set_Option ") || !echoed {
		t.Fatalf("commands %q", got)
	}
	synctest.Wait()
	if s := c.State(); !s.Tools.Running || s.Tools.Heartbeat != vmxsim.HeartbeatGreen {
		t.Fatalf("tools %+v", s.Tools)
	}
	// Closing the channel ends the session.
	g.msg(ch, MsgClose, 0)
	synctest.Wait()
	if c.HasToolsChannel() {
		t.Fatal("the session outlived its channel")
	}
	cancel()
	wg.Wait()
}

// TestBackdoorKeepDeadChannels: with KeepDeadChannels a process's channels
// outlive it, with the reply waiting on them, as on the VMX: another
// process holding the cookie takes the reply and closes the channel.
func TestBackdoorKeepDeadChannels(t *testing.T) {
	_, b, g := newBackdoor(t, Options{KeepDeadChannels: true})
	ch, _ := g.open(ProtoRPCI, true)
	if err := g.send(ch, []byte("log sent before dying")); err != nil {
		t.Fatal(err)
	}
	b.CloseOwner(g.owner) // the process has gone
	if st := b.Stats(); st.Channels != 1 {
		t.Fatalf("channel closed with its process: %+v", st)
	}
	g.owner = 101 // its successor, with the token
	if r, err := g.recv(ch); err != nil || string(r) != "1 " {
		t.Fatalf("reply after the owner died: %q %v", r, err)
	}
	if r, err := g.recv(ch); err != nil || r != nil {
		t.Fatalf("second receive: %q %v", r, err)
	}
	if st := status(g.msg(ch, MsgClose, 0)); st&StatusSuccess == 0 || b.Stats().Channels != 0 {
		t.Fatalf("close: %#x %+v", st, b.Stats())
	}
}

// TestBackdoorKillFaults: a kill fault kills the guest at the chosen
// moment of the chosen RPCI message (TCLO traffic does not count) and
// leaves the channel as that moment left it.
func TestBackdoorKillFaults(t *testing.T) {
	var killed []int
	_, b, g := newBackdoor(t, Options{KeepDeadChannels: true, Kill: func(owner int) { killed = append(killed, owner) }})
	for _, noHB := range []bool{false, true} {
		b.opts.NoHB = noHB
		ch, _ := g.open(ProtoRPCI, true)
		tclo, _ := g.open(ProtoTCLO, true)
		n := len(killed)

		// sendsize: the message never arrives.
		if err := b.KillAt(KillAtSendSize, 1); err != nil {
			t.Fatal(err)
		}
		if err := g.send(tclo, nil); err != nil { // TCLO: not counted
			t.Fatal(err)
		}
		if err := g.send(ch, []byte("log line a")); err != nil {
			t.Fatal(err)
		}
		g.recv(ch)
		if err := g.send(ch, []byte("log line b")); err == nil || len(killed) != n+1 || killed[n] != g.owner {
			t.Fatalf("sendsize: %v, killed %v", err, killed)
		}
		if r, err := g.recv(ch); err != nil || r != nil {
			t.Fatalf("sendsize: a reply waits: %q %v", r, err)
		}
		// sent: handled, the reply waits, the guest hears nothing.
		b.KillAt(KillAtSent, 0)
		if err := g.send(ch, []byte("log line c")); err == nil || len(killed) != n+2 {
			t.Fatalf("sent: %v, killed %v", err, killed)
		}
		if r, err := g.recv(ch); err != nil || string(r) != "1 " {
			t.Fatalf("sent: reply %q %v", r, err)
		}
		// recvstatus: the acknowledgement is not taken.
		b.KillAt(KillAtRecvStatus, 0)
		if err := g.send(ch, []byte("log line d")); err != nil {
			t.Fatal(err)
		}
		if _, err := g.recv(ch); err == nil || len(killed) != n+3 {
			t.Fatalf("recvstatus: %v, killed %v", err, killed)
		}
		if r, err := g.recv(ch); err != nil || string(r) != "1 " {
			t.Fatalf("recvstatus: reply %q %v", r, err)
		}
		// One kill per arming.
		if err := g.send(ch, []byte("log line e")); err != nil {
			t.Fatal(err)
		}
		if _, err := g.recv(ch); err != nil || len(killed) != n+3 {
			t.Fatalf("disarmed: %v, killed %v", err, killed)
		}
	}
	if st := b.Stats(); st.Kills != 6 {
		t.Fatalf("stats %+v", st)
	}
	if err := b.KillAt("later", 0); err == nil {
		t.Fatal("unknown moment accepted")
	}
	_, nokill, _ := newBackdoor(t, Options{})
	if err := nokill.KillAt(KillAtSent, 0); err == nil {
		t.Fatal("kill fault armed with no way to kill")
	}
}

// TestBackdoorDroppedRequest: a request that fault injection drops leaves
// no reply on the channel, as a message that never arrived whole.
func TestBackdoorDroppedRequest(t *testing.T) {
	synctest.Test(t, testBackdoorDroppedRequest)
}

func testBackdoorDroppedRequest(t *testing.T) {
	c, _, g := newBackdoor(t, Options{})
	ch, _ := g.open(ProtoRPCI, true)
	c.HoldRPCI("log", 0)
	done := make(chan error, 1)
	go func() { done <- g.send(ch, []byte("log held")) }()
	synctest.Wait() // the request is held
	if n := c.HeldRPCI(); n != 1 {
		t.Fatalf("held %d", n)
	}
	c.ReleaseRPCI(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, err := g.recv(ch); err != nil || r != nil {
		t.Fatalf("reply to a dropped request: %q %v", r, err)
	}
}
