package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/rpc/sockchan"
	"github.com/govmtools/govmtools/rpc/vsock"
)

// fakeBackdoor answers OPEN and counts the opens per protocol.
type fakeBackdoor struct {
	mu     sync.Mutex
	opens  map[uint32]int
	refuse bool // refuse OPEN
	n      int  // LB calls
}

func (f *fakeBackdoor) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *fakeBackdoor) LB(r *backdoor.Regs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if uint16(r.CX>>16) == 0 { // OPEN
		if f.refuse {
			r.CX = 0
			return
		}
		f.opens[uint32(r.BX)&^0x80000000]++
		r.DX, r.SI, r.DI = 3<<16, 0x1234, 0x5678 // channel 3 and a cookie
	}
	r.CX = 1 << 16 // SUCCESS
}
func (f *fakeBackdoor) HBOut(r *backdoor.Regs, src []byte) { r.BX = 1 << 16 }
func (f *fakeBackdoor) HBIn(r *backdoor.Regs, dst []byte)  { r.BX = 1 << 16 }

func (f *fakeBackdoor) count(proto uint32) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opens[proto]
}

// fakeVSock is a vsock "network" that refuses or accepts connections.
type fakeVSock struct {
	mu      sync.Mutex
	refuse  bool
	dials   map[uint32]int // by port
	sockets int
}

type fakeSock struct {
	n    *fakeVSock
	conn net.Conn
}

func (s *fakeSock) Bind(port uint32) error { return nil }
func (s *fakeSock) Connect(ctx context.Context, cid, port uint32) error {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	s.n.dials[port]++
	if s.n.refuse {
		return syscall.ECONNREFUSED
	}
	a, b := net.Pipe()
	b.Close()
	s.conn = a
	return nil
}
func (s *fakeSock) SetBuffers(n int) error  { return nil }
func (s *fakeSock) Conn() (net.Conn, error) { return s.conn, nil }
func (s *fakeSock) Close() error            { return nil }
func (n *fakeVSock) socket() (vsock.Socket, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sockets++
	return &fakeSock{n: n}, nil
}
func (n *fakeVSock) dialed(port uint32) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials[port]
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newAuto(t *testing.T, simulated bool) (*Transport, *fakeBackdoor, *fakeVSock, *fakeClock) {
	bd := &fakeBackdoor{opens: map[uint32]int{}}
	vs := &fakeVSock{refuse: true, dials: map[uint32]int{}}
	clk := &fakeClock{t: time.Unix(1000, 0)}
	detects := 0
	tr := New(Config{
		Mode:        Mode{Kind: Auto},
		Simulated:   simulated,
		Detect:      func() error { detects++; return nil },
		Hypercall:   bd,
		VSockSocket: vs.socket,
		Now:         clk.now,
	})
	t.Cleanup(func() {
		if detects > 1 {
			t.Errorf("Detect ran %d times; it is cached", detects)
		}
	})
	return tr, bd, vs, clk
}

// TestAutoFallbackAndBackoff: RPCI tries vsock, falls back to the backdoor,
// and retries vsock only after 2 s, 4 s, ... up to 5 minutes; a vsock
// success resets the back-off. TCLO tries vsock before the backdoor on
// every open.
func TestAutoFallbackAndBackoff(t *testing.T) {
	tr, bd, vs, clk := newAuto(t, false)
	dial := func() any {
		ch, err := tr.DialRPCI(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		return ch
	}
	if _, ok := dial().(*backdoor.Channel); !ok || vs.dialed(vsock.PortRPCI) != 1 {
		t.Fatalf("first dial: want vsock tried once then the backdoor; vsock dials %d", vs.dialed(vsock.PortRPCI))
	}
	// After each failure the backdoor is used until the back-off has
	// passed; then vsock is tried once more.
	last := clk.t
	for i, d := range []time.Duration{2, 4, 8, 16, 32, 64, 128, 256, 300, 300} {
		before := vs.dialed(vsock.PortRPCI)
		clk.t = last.Add(d*time.Second - 100*time.Millisecond)
		dial()
		if vs.dialed(vsock.PortRPCI) != before {
			t.Fatalf("step %d: vsock retried before %v", i, d*time.Second)
		}
		clk.t = last.Add(d * time.Second)
		dial()
		if vs.dialed(vsock.PortRPCI) != before+1 {
			t.Fatalf("step %d: vsock not retried after %v", i, d*time.Second)
		}
		last = clk.t
	}
	// vsock comes back: used, and the back-off is cleared.
	vs.mu.Lock()
	vs.refuse = false
	vs.mu.Unlock()
	clk.t = clk.t.Add(5 * time.Minute)
	if _, ok := dial().(*sockchan.Conn); !ok {
		t.Fatal("vsock not used once it answers")
	}
	if c, ok := dial().(*sockchan.Conn); !ok || !c.WaitInKernel {
		t.Fatal("vsock not used right after a success, or its RPCI reply is waited for in Go's poller")
	}
	if bd.count(backdoor.ProtoRPCI) == 0 {
		t.Fatal("the backdoor was never used")
	}

	// TCLO: vsock first each time, backdoor when it fails.
	vs.mu.Lock()
	vs.refuse = true
	vs.mu.Unlock()
	for i := 1; i <= 2; i++ {
		ch, err := tr.DialTCLO(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ch.(*backdoor.Channel); !ok || vs.dialed(vsock.PortTCLO) != i || bd.count(backdoor.ProtoTCLO) != i {
			t.Fatalf("tclo dial %d: %T, vsock dials %d, backdoor opens %d", i, ch, vs.dialed(vsock.PortTCLO), bd.count(backdoor.ProtoTCLO))
		}
		ch.Close()
	}
}

// TestAutoSimulated: under vmxsim (GOVMTOOLS_SIMULATED=1) auto never opens
// a vsock socket; it goes straight to the backdoor, which the trap serves.
func TestAutoSimulated(t *testing.T) {
	tr, bd, vs, _ := newAuto(t, true)
	for range 3 {
		if _, err := tr.DialRPCI(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.DialTCLO(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if vs.sockets != 0 {
		t.Fatalf("%d vsock sockets created under vmxsim", vs.sockets)
	}
	if bd.count(backdoor.ProtoRPCI) != 3 || bd.count(backdoor.ProtoTCLO) != 3 {
		t.Fatalf("backdoor opens %v", bd.opens)
	}
}

// TestBackdoorModeDetects: --rpc backdoor also refuses outside VMware
// rather than fault, and the answer is cached.
func TestBackdoorModeDetects(t *testing.T) {
	bd := &fakeBackdoor{opens: map[uint32]int{}}
	detects := 0
	tr := New(Config{Mode: Mode{Kind: Backdoor}, Hypercall: bd, Detect: func() error {
		detects++
		return backdoor.ErrNotVMware
	}})
	for range 2 {
		if _, err := tr.DialRPCI(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
			t.Fatalf("DialRPCI = %v", err)
		}
	}
	if detects != 1 || len(bd.opens) != 0 {
		t.Fatalf("detects %d, opens %v", detects, bd.opens)
	}
	// The real thing on this machine (not a VMware VM): refused, no fault.
	real := New(Config{Mode: Mode{Kind: Backdoor}})
	if _, err := real.DialTCLO(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
		t.Fatalf("real backdoor mode = %v", err)
	}
}

// TestResumable: in auto mode the resumable RPCI channel is the backdoor
// (vsock only when the backdoor cannot be opened); its token resumes it in
// auto and backdoor modes, never in unix:DIR.
func TestResumable(t *testing.T) {
	tr, bd, vs, _ := newAuto(t, false)
	ch, err := tr.DialRPCIResumable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bch, ok := ch.(*backdoor.Channel)
	if !ok || vs.sockets != 0 || bd.count(backdoor.ProtoRPCI) != 1 {
		t.Fatalf("resumable dial: %T, %d vsock sockets, backdoor opens %v", ch, vs.sockets, bd.opens)
	}
	tok := bch.Token()
	again, err := tr.ResumeRPCI(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.(rpc.Resumable).Token(); got != tok {
		t.Fatalf("resumed token %q, want %q", got, tok)
	}
	if bd.count(backdoor.ProtoRPCI) != 1 {
		t.Fatal("resuming opened a channel")
	}
	if _, err := tr.ResumeRPCI("bd1-junk"); !errors.Is(err, backdoor.ErrToken) {
		t.Fatalf("bad token: %v", err)
	}
	bd.mu.Lock()
	bd.refuse = true
	bd.mu.Unlock()
	vs.mu.Lock()
	vs.refuse = false
	vs.mu.Unlock()
	ch, err = tr.DialRPCIResumable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ch.(*sockchan.Conn); !ok {
		t.Fatalf("backdoor refused: got %T, want vsock", ch)
	}
	ch.Close()

	u := New(Config{Mode: Mode{Kind: Unix, Dir: t.TempDir()}, Hypercall: bd, Detect: func() error { return nil }})
	if _, err := u.ResumeRPCI(tok); err == nil {
		t.Fatal("unix:DIR resumed a backdoor channel")
	}
}

// TestHostClock: only auto and backdoor offer the host clock, and it
// waits for (and shares) the transport's VMware detection.
func TestHostClock(t *testing.T) {
	for _, m := range []Mode{{Kind: Unix, Dir: "/tmp"}, {Kind: VSock}} {
		if _, ok := New(Config{Mode: m}).HostClock(); ok {
			t.Errorf("%v offers a host clock", m)
		}
	}
	for _, kind := range []Kind{Auto, Backdoor} {
		bd := &fakeBackdoor{opens: map[uint32]int{}}
		detects := 0
		tr := New(Config{Mode: Mode{Kind: kind}, Hypercall: bd, Detect: func() error {
			detects++
			return backdoor.ErrNotVMware
		}})
		c, ok := tr.HostClock()
		if !ok {
			t.Fatalf("%s: no host clock", kind)
		}
		for range 2 {
			if _, _, err := c.HostTime(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
				t.Fatalf("%s: HostTime outside VMware = %v", kind, err)
			}
		}
		tr.DialRPCI(t.Context())
		if detects != 1 || bd.calls() != 0 {
			t.Fatalf("%s: detects %d, backdoor calls %d", kind, detects, bd.calls())
		}
	}
}
