package backdoor_test

// These tests run the guest message layer against vmxsim's backdoor state
// machine in process (a guest-side test may use the simulator; the
// production package never imports it). The assembly itself runs under
// the ptrace trap in internal/e2e.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/vmxsim"
	simbd "github.com/govmtools/govmtools/vmxsim/backdoor"
)

// simPort adapts a simbd.Server to backdoor.Hypercall: the registers go
// across as a real trap would carry them, and the HB buffer is "guest
// memory" at a fake address.
type simPort struct {
	b *simbd.Server
	// before, if set, runs before each call with the call's number.
	before func(n int, r *backdoor.Regs)
	// after, if set, may rewrite the registers the guest sees.
	after func(n int, r *backdoor.Regs)
	calls int
	log   []backdoor.Regs // registers of each call as sent
}

const bufAddr = 0x7f0000001000

type sliceMem struct{ buf []byte }

func (m sliceMem) ReadAt(p []byte, addr uint64) error {
	if addr != bufAddr || len(p) > len(m.buf) {
		return errors.New("bad address")
	}
	copy(p, m.buf)
	return nil
}

func (m sliceMem) WriteAt(p []byte, addr uint64) error {
	if addr != bufAddr || len(p) > len(m.buf) {
		return errors.New("bad address")
	}
	copy(m.buf, p)
	return nil
}

func (p *simPort) do(r *backdoor.Regs, f func(*simbd.Regs)) {
	p.calls++
	if p.before != nil {
		p.before(p.calls, r)
	}
	p.log = append(p.log, *r)
	vr := simbd.Regs(*r)
	f(&vr)
	*r = backdoor.Regs(vr)
	if p.after != nil {
		p.after(p.calls, r)
	}
}

func (p *simPort) LB(r *backdoor.Regs) {
	r.AX = backdoor.Magic
	r.DX = r.DX&^0xffff | backdoor.Port
	p.do(r, func(vr *simbd.Regs) { p.b.LB(vr, 1) })
}

func (p *simPort) HBOut(r *backdoor.Regs, src []byte) {
	r.AX, r.CX, r.SI = backdoor.Magic, uint64(len(src)), bufAddr
	r.DX = r.DX&^0xffff | backdoor.HBPort
	p.do(r, func(vr *simbd.Regs) { p.b.HBOut(vr, 1, sliceMem{src}) })
}

func (p *simPort) HBIn(r *backdoor.Regs, dst []byte) {
	r.AX, r.CX, r.DI = backdoor.Magic, uint64(len(dst)), bufAddr
	r.DX = r.DX&^0xffff | backdoor.HBPort
	p.do(r, func(vr *simbd.Regs) { p.b.HBIn(vr, 1, sliceMem{dst}) })
}

func newSim(t *testing.T, opts simbd.Options) (*vmxsim.Core, *simbd.Server, *simPort) {
	t.Helper()
	c, err := vmxsim.New(vmxsim.Options{PingInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	b := simbd.New(c, opts)
	return c, b, &simPort{b: b}
}

// value is n bytes whose every position differs from its neighbours, so a
// misplaced byte shows.
func value(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = "0123456789abcdefghijklmnopqrstuvwxyz ABC"[i%40]
	}
	return v
}

func TestMessageEveryLength(t *testing.T) {
	lengths := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 60 << 10, 60<<10 + 1, 60<<10 + 2, 60<<10 + 3}
	for _, noHB := range []bool{false, true} {
		t.Run(fmt.Sprintf("noHB=%v", noHB), func(t *testing.T) {
			c, b, port := newSim(t, simbd.Options{NoHB: noHB})
			ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			client := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) { return ch, nil }, NoRetry: true}
			for _, n := range lengths {
				v := value(n)
				if _, err := client.Call(t.Context(), append([]byte("info-set guestinfo.k "), v...)); err != nil {
					t.Fatalf("len %d: %v", n, err)
				}
				if got := c.State().Guestinfo["k"]; got != string(v) {
					t.Fatalf("len %d: the VMX stored %q...", n, got[:min(len(got), 16)])
				}
				got, err := client.Call(t.Context(), []byte("info-get guestinfo.k"))
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("len %d: info-get returned %d bytes, %v", n, len(got), err)
				}
			}
			st := b.Stats()
			if noHB != (st.HBIn+st.HBOut == 0) {
				t.Fatalf("noHB=%v but stats %+v", noHB, st)
			}
		})
	}
}

// TestCallInto: a reply that fits the caller's buffer is received into it
// (on both paths); one that does not gets a buffer of its own.
func TestCallInto(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		t.Run(fmt.Sprintf("noHB=%v", noHB), func(t *testing.T) {
			_, _, port := newSim(t, simbd.Options{NoHB: noHB})
			ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			client := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) { return ch, nil }, NoRetry: true}
			v := value(1000)
			if _, err := client.Call(t.Context(), append([]byte("info-set guestinfo.k "), v...)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			got, err := client.CallInto(t.Context(), []byte("info-get guestinfo.k"), buf)
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("CallInto: %d bytes, %v", len(got), err)
			}
			if &got[0] != &buf[2] {
				t.Fatal("the reply was not received into the caller's buffer")
			}
			small := make([]byte, 10)
			got, err = client.CallInto(t.Context(), []byte("info-get guestinfo.k"), small)
			if err != nil || !bytes.Equal(got, v) || !bytes.Equal(small, make([]byte, 10)) {
				t.Fatalf("CallInto with a small buffer: %d bytes, %v, buffer %q", len(got), err, small)
			}
		})
	}
}

// TestTailPacking pins the LB word layout of 1-3 byte tails: little-endian
// low bytes, upper bytes zero (the bug vmw-guestinfo has for 3 bytes).
func TestTailPacking(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{NoHB: true})
	ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	port.log = nil
	if err := ch.Send(t.Context(), []byte("abcdXYZ")); err != nil {
		t.Fatal(err)
	}
	var words []uint32
	for _, r := range port.log {
		if uint16(r.CX>>16) == 2 { // SENDPAYLOAD
			words = append(words, uint32(r.BX))
		}
	}
	want := []uint32{binary.LittleEndian.Uint32([]byte("abcd")), 'X' | 'Y'<<8 | 'Z'<<16}
	if fmt.Sprint(words) != fmt.Sprint(want) {
		t.Fatalf("payload words %#x, want %#x", words, want)
	}
}

func TestOpenRetriesWithoutCookie(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	var opens []uint32
	port.after = func(n int, r *backdoor.Regs) {
		sent := port.log[n-1]
		if uint16(sent.CX>>16) == 0 {
			opens = append(opens, uint32(sent.BX))
			if uint32(sent.BX)&0x80000000 != 0 {
				r.CX = 0 // an old VMX refuses the cookie flag
			}
		}
	}
	ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	if len(opens) != 2 || opens[0] != backdoor.ProtoRPCI|0x80000000 || opens[1] != backdoor.ProtoRPCI {
		t.Fatalf("opens %#x", opens)
	}
	if err := ch.Send(t.Context(), []byte("log cookieless")); err != nil {
		t.Fatal(err)
	}
	// A VMX with no channels left refuses both.
	port.after = func(n int, r *backdoor.Regs) {
		if uint16(port.log[n-1].CX>>16) == 0 {
			r.CX = 0
		}
	}
	if _, err := backdoor.Open(port, backdoor.ProtoRPCI); !errors.Is(err, backdoor.ErrOpen) {
		t.Fatalf("Open = %v", err)
	}
}

// TestCheckpointRestart injects a checkpoint before each call of a round
// trip in turn; the layer restarts the interrupted transfer and the
// request is answered exactly once.
func TestCheckpointRestart(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		c, b, port := newSim(t, simbd.Options{NoHB: noHB})
		var runs int
		c.HandleRPCI("echo", func(ctx context.Context, caller vmxsim.Caller, args []byte) []byte {
			runs++
			return append([]byte("1 "), args...)
		})
		ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
		if err != nil {
			t.Fatal(err)
		}
		req := append([]byte("echo "), value(27)...)
		var total int
		for k := 1; k < 40; k++ {
			runs, port.calls = 0, 0
			port.before = func(n int, r *backdoor.Regs) {
				if n == k {
					b.InjectCheckpoint()
				}
			}
			if err := ch.Send(t.Context(), req); err != nil {
				t.Fatalf("noHB=%v k=%d: send: %v", noHB, k, err)
			}
			got, err := ch.Receive(t.Context())
			if err != nil || !bytes.Equal(got, append([]byte("1 "), req[5:]...)) || runs != 1 {
				t.Fatalf("noHB=%v k=%d: %q %v, handler ran %d times", noHB, k, got, err, runs)
			}
			total += port.calls
		}
		port.before = nil
		// Checkpoints cost calls: the restarts happened.
		if total <= 39*map[bool]int{false: 5, true: 17}[noHB] {
			t.Errorf("noHB=%v: %d calls in all; no restarts seen", noHB, total)
		}
	}
}

// TestLocalFailureSendsStatusZero: a size the guest will not take is
// refused locally and reported to the VMX with RECVSTATUS, status 0.
func TestLocalFailureSendsStatusZero(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(t.Context(), []byte("info-get guestinfo.x")); err != nil {
		t.Fatal(err)
	}
	port.after = func(n int, r *backdoor.Regs) {
		if uint16(r.CX>>16)&2 != 0 && r.BX < 1<<30 { // the RECVSIZE answer
			r.BX = backdoor.MaxReceive + 1
		}
	}
	port.log = nil
	if _, err := ch.Receive(t.Context()); !errors.Is(err, backdoor.ErrReceive) {
		t.Fatalf("Receive = %v", err)
	}
	last := port.log[len(port.log)-1]
	if uint16(last.CX>>16) != 5 || uint32(last.BX) != 0 {
		t.Fatalf("last call %+v, want RECVSTATUS with status 0", last)
	}
	port.after = nil
	// Nothing waits now; the channel still works.
	if got, err := ch.Receive(t.Context()); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("idle Receive = %q %v, want empty", got, err)
	}
}

func TestCloseAndReset(t *testing.T) {
	_, b, port := newSim(t, simbd.Options{})
	ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := ch.Send(t.Context(), []byte("log x")); !errors.Is(err, backdoor.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	ch, _ = backdoor.Open(port, backdoor.ProtoRPCI)
	b.ResetChannels()
	if err := ch.Send(t.Context(), []byte("log x")); !errors.Is(err, backdoor.ErrSend) {
		t.Fatalf("Send after a VMX reset = %v", err)
	}
	// rpc.Client reopens after a transport failure and retries once.
	var opens int
	client := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) {
		opens++
		return backdoor.Open(port, backdoor.ProtoRPCI)
	}}
	if _, err := client.Call(t.Context(), []byte("log one")); err != nil {
		t.Fatal(err)
	}
	b.ResetChannels()
	if _, err := client.Call(t.Context(), []byte("log two")); err != nil || opens != 2 {
		t.Fatalf("after reset: %v, %d opens", err, opens)
	}
	if _, err := ch.Receive(context.Background()); err == nil {
		t.Fatal("receive on a reset channel succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := ch.Send(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context = %v", err)
	}
}

func TestGetVersion(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	v, typ, err := backdoor.GetVersion(port)
	if err != nil || v != backdoor.Version || typ != simbd.VMXTypeScalableServer {
		t.Fatalf("GetVersion = %d %d %v", v, typ, err)
	}
}

// TestTCLOLoop runs rpc.Loop, the guest's TCLO loop, over a backdoor TCLO
// channel against the simulated VMX: reset, ping, the startup batch and a
// host command, on both paths.
func TestTCLOLoop(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		c, b, port := newSim(t, simbd.Options{NoHB: noHB})
		var mu sync.Mutex
		var seen []string
		mux := &rpc.Mux{}
		mux.HandleFunc("Echo", func(ctx context.Context, args []byte) ([]byte, error) { return args, nil })
		for _, name := range []string{"Set_Option", "Capabilities_Register"} {
			mux.HandleFunc(name, func(ctx context.Context, args []byte) ([]byte, error) {
				mu.Lock()
				seen = append(seen, name)
				mu.Unlock()
				return nil, nil
			})
		}
		var portMu sync.Mutex // the loop and Close may race on the fake port's counters
		lockedPort := &lockedHypercall{mu: &portMu, h: port}
		loop := &rpc.Loop{App: "toolbox", Mux: mux, RestartDelay: 10 * time.Millisecond, Dial: func(ctx context.Context) (rpc.Channel, error) {
			return backdoor.Open(lockedPort, backdoor.ProtoTCLO)
		}}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { b.Run(ctx) })
		wg.Go(func() { loop.Run(ctx) })
		testutil.WaitFor(t, 10*time.Second, "tools running with a green heartbeat", func() bool {
			s := c.State()
			return s.Tools.Running && s.Tools.Heartbeat == vmxsim.HeartbeatGreen
		})
		reply, err := c.SendTCLO(ctx, "Echo "+string(value(5000)))
		if err != nil || string(reply) != "OK "+string(value(5000)) {
			t.Fatalf("noHB=%v: SendTCLO = %d bytes, %v", noHB, len(reply), err)
		}
		mu.Lock()
		joined := strings.Join(seen, " ")
		mu.Unlock()
		if !strings.Contains(joined, "Set_Option") || !strings.HasSuffix(joined, "Capabilities_Register") {
			t.Fatalf("startup commands %q", joined)
		}
		// A VMX-side reset: the loop reopens and the VMX resets it again.
		b.ResetChannels()
		// Until the VMX has noticed the old session is gone, a command may
		// still go to it and fail; only success on the new one counts.
		testutil.WaitFor(t, 10*time.Second, "a TCLO command on the reopened channel", func() bool {
			r, err := c.SendTCLO(ctx, "Echo again")
			return err == nil && string(r) == "OK again"
		})
		if b.Stats().Opens < 2 {
			t.Fatal("the loop did not reopen its channel")
		}
		cancel()
		wg.Wait()
	}
}

type lockedHypercall struct {
	mu *sync.Mutex
	h  backdoor.Hypercall
}

func (l *lockedHypercall) LB(r *backdoor.Regs) { l.mu.Lock(); defer l.mu.Unlock(); l.h.LB(r) }
func (l *lockedHypercall) HBOut(r *backdoor.Regs, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h.HBOut(r, b)
}
func (l *lockedHypercall) HBIn(r *backdoor.Regs, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.h.HBIn(r, b)
}

// deadPort forwards calls until the process "dies" after n calls; later
// calls reach nothing and fail, as a killed process makes no more.
type deadPort struct {
	port *simPort
	n    int
}

func (d *deadPort) alive() bool {
	d.n--
	return d.n >= 0
}

func (d *deadPort) LB(r *backdoor.Regs) {
	if d.alive() {
		d.port.LB(r)
		return
	}
	r.CX = 0
}

func (d *deadPort) HBOut(r *backdoor.Regs, src []byte) {
	if d.alive() {
		d.port.HBOut(r, src)
		return
	}
	r.BX = 0
}

func (d *deadPort) HBIn(r *backdoor.Regs, dst []byte) {
	if d.alive() {
		d.port.HBIn(r, dst)
		return
	}
	r.BX = 0
}

// TestResume: a channel found again by its token (as a restarted process
// does) tells whether the last request reached the VMX: its reply is still
// waiting when the process died after sending, nothing is when it died
// before the message was whole, and a closed or reset channel fails.
func TestResume(t *testing.T) {
	for _, noHB := range []bool{false, true} {
		t.Run(fmt.Sprintf("noHB=%v", noHB), func(t *testing.T) {
			c, b, port := newSim(t, simbd.Options{NoHB: noHB})
			var mu sync.Mutex
			n := 0
			c.HandleRPCI("log", func(context.Context, vmxsim.Caller, []byte) []byte {
				mu.Lock()
				n++
				mu.Unlock()
				return []byte("1 ")
			})
			logged := func() int {
				mu.Lock()
				defer mu.Unlock()
				return n
			}

			// Died right after the send: the reply waits on the channel.
			ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
			if err != nil {
				t.Fatal(err)
			}
			tok := ch.Token()
			if err := ch.Send(t.Context(), []byte("log line 1")); err != nil {
				t.Fatal(err)
			}
			again, err := backdoor.Resume(port, tok)
			if err != nil {
				t.Fatal(err)
			}
			if again.Token() != tok || again.ID() != ch.ID() {
				t.Fatalf("resumed %q, want %q", again.Token(), tok)
			}
			if reply, err := again.Receive(t.Context()); err != nil || string(reply) != "1 " || logged() != 1 {
				t.Fatalf("after a send: %q %v, %d logged", reply, err, logged())
			}
			// Died in the middle of taking the reply: it is still there.
			if err := again.Send(t.Context(), []byte("log line 2")); err != nil {
				t.Fatal(err)
			}
			half := &deadPort{port: port, n: 2} // RECVSIZE and one payload step or the HB in
			cut, _ := backdoor.Resume(half, tok)
			if _, err := cut.Receive(t.Context()); err == nil {
				t.Fatal("receive with a dying port succeeded")
			}
			again, _ = backdoor.Resume(port, tok)
			if reply, err := again.Receive(t.Context()); err != nil || string(reply) != "1 " || logged() != 2 {
				t.Fatalf("after a cut receive: %q %v, %d logged", reply, err, logged())
			}
			// Nothing waits once the reply was taken.
			if reply, err := again.Receive(t.Context()); err != nil || len(reply) != 0 {
				t.Fatalf("second receive: %q %v", reply, err)
			}
			// Died in the middle of the send (the LB path sends 4 bytes a
			// call; HB in one): the VMX never saw the message whole.
			dying := &deadPort{port: port, n: 1} // SENDSIZE only
			if noHB {
				dying.n = 3 // and two payload steps of 4 bytes
			}
			cut, _ = backdoor.Resume(dying, tok)
			if err := cut.Send(t.Context(), []byte("log line 3 that never arrives")); err == nil {
				t.Fatal("send with a dying port succeeded")
			}
			if reply, err := again.Receive(t.Context()); err != nil || len(reply) != 0 || logged() != 2 {
				t.Fatalf("after a cut send: %q %v, %d logged", reply, err, logged())
			}
			// Closed, or reset by the VMX: the question stays open.
			if err := again.Close(); err != nil {
				t.Fatal(err)
			}
			again, _ = backdoor.Resume(port, tok)
			if _, err := again.Receive(t.Context()); !errors.Is(err, backdoor.ErrReceive) {
				t.Fatalf("receive on a closed channel: %v", err)
			}
			ch, _ = backdoor.Open(port, backdoor.ProtoRPCI)
			b.ResetChannels()
			again, _ = backdoor.Resume(port, ch.Token())
			if _, err := again.Receive(t.Context()); !errors.Is(err, backdoor.ErrReceive) {
				t.Fatalf("receive on a reset channel: %v", err)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	for _, bad := range []string{"", "bd1-", "bd2-49435052-0001-00000001-00000002", "bd1-49435052-0001-00000000-00000000",
		"bd1-49435052-001-00000001-00000002", "bd1-49435052-0001-0000001-00000002", "bd1-4943505z-0001-00000001-00000002",
		"bd1-49435052-0001-00000001-00000002-", "bd1-+9435052-0001-00000001-00000002"} {
		if _, err := backdoor.Resume(port, bad); !errors.Is(err, backdoor.ErrToken) {
			t.Errorf("Resume(%q) = %v", bad, err)
		}
	}
	ch, err := backdoor.Resume(port, "bd1-49435052-0007-deadbeef-00000002")
	if err != nil || ch.ID() != 7 {
		t.Fatalf("%v %v", ch, err)
	}
	if hi, lo := ch.Cookie(); hi != 0xdeadbeef || lo != 2 {
		t.Fatalf("cookie %x %x", hi, lo)
	}
	// A channel without a cookie has no token.
	noCookie := &refuseCookie{port}
	plain, err := backdoor.Open(noCookie, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.Token() != "" {
		t.Fatalf("cookieless channel token %q", plain.Token())
	}
}

// refuseCookie is a VMX that predates cookies: it refuses OPEN with the
// cookie flag.
type refuseCookie struct{ *simPort }

func (p *refuseCookie) LB(r *backdoor.Regs) {
	if uint16(r.CX>>16) == 0 && uint32(r.BX)&0x80000000 != 0 {
		r.CX = 0
		return
	}
	p.simPort.LB(r)
}

// FuzzResume: any token either resumes a channel whose Token is the same
// text, or is refused with ErrToken.
func FuzzResume(f *testing.F) {
	f.Add("bd1-49435052-0007-deadbeef-00000002")
	f.Add("bd1-49435052-0001-00000000-00000000")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		ch, err := backdoor.Resume(nil, token)
		if err != nil {
			if !errors.Is(err, backdoor.ErrToken) {
				t.Fatalf("Resume(%q) = %v", token, err)
			}
			return
		}
		if ch.Token() != strings.ToLower(token) {
			t.Fatalf("Resume(%q).Token() = %q", token, ch.Token())
		}
	})
}
