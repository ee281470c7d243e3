package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

func TestClientReplies(t *testing.T) {
	host := &rpctest.RPCIHost{Reply: func(req []byte) []byte {
		switch {
		case bytes.HasPrefix(req, []byte("info-get guestinfo.k")):
			return []byte("1 value with spaces")
		case bytes.HasPrefix(req, []byte("info-get")):
			return []byte("0 No value found")
		case bytes.HasPrefix(req, []byte("garbage")):
			return []byte("?")
		}
		return []byte("0 Unknown command")
	}}
	c := &rpc.Client{Dial: host.Dial}
	ctx := t.Context()

	got, err := c.CallString(ctx, "info-get guestinfo.k")
	if err != nil || got != "value with spaces" {
		t.Fatalf("Call = %q, %v", got, err)
	}
	_, err = c.CallString(ctx, "info-get guestinfo.missing")
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Text != "No value found" || re.Request != "info-get" {
		t.Fatalf("missing key: %#v", err)
	}
	_, err = c.CallString(ctx, "garbage")
	var pe *rpc.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("garbage reply: %v", err)
	}
	if _, err := c.Call(ctx, make([]byte, rpc.MaxMessage+1)); !errors.Is(err, rpc.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := c.Call(ctx, append([]byte("info-get guestinfo.k "), make([]byte, rpc.MaxMessage-21)...)); err != nil {
		t.Fatalf("exactly 64 KiB: %v", err)
	}
	// One persistent channel, reopened only after the malformed reply.
	if n := host.Opens(); n != 2 {
		t.Fatalf("opens = %d, want 2", n)
	}
}

func TestClientReopensAndRetriesOnce(t *testing.T) {
	host := &rpctest.RPCIHost{Reply: func(req []byte) []byte { return []byte("1 ok") }}
	c := &rpc.Client{Dial: host.Dial}
	if _, err := c.CallString(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	host.FailNext(1)
	if got, err := c.CallString(t.Context(), "b"); err != nil || got != "ok" {
		t.Fatalf("after one failure: %q %v", got, err)
	}
	host.FailNext(2)
	_, err := c.CallString(t.Context(), "c")
	if err == nil || !rpc.IsTransportError(err) {
		t.Fatalf("after two failures: %v", err)
	}
	if got := host.Opens(); got != 3 {
		t.Fatalf("opens = %d, want 3", got)
	}
	nr := &rpc.Client{Dial: host.Dial, NoRetry: true}
	host.FailNext(1)
	if _, err := nr.CallString(t.Context(), "d"); err == nil {
		t.Fatal("NoRetry client retried")
	}
}

func TestMuxFraming(t *testing.T) {
	var m rpc.Mux
	var gotArgs []byte
	m.HandleFunc("Set_Option", func(ctx context.Context, args []byte) ([]byte, error) {
		gotArgs = args
		if len(args) == 0 {
			return nil, rpc.Failure("Unknown or invalid option")
		}
		return nil, nil
	})
	m.HandleFunc("fail", func(ctx context.Context, args []byte) ([]byte, error) {
		return nil, errors.New("it broke")
	})
	m.HandleFunc("boom", func(ctx context.Context, args []byte) ([]byte, error) {
		panic("handler bug")
	})
	tests := []struct{ req, want string }{
		{"Set_Option broadcastIP 1", "OK "},
		{"Set_Option synctime  1\x00", "OK "},
		{"Set_Option", "ERROR Unknown or invalid option"},
		{"fail", "ERROR it broke"},
		{"boom x", "ERROR internal error in boom"},
		{"No_Such_Thing arg", "ERROR Unknown Command"},
		{"", "ERROR Bad command"},
		{" leading", "ERROR Bad command"},
	}
	for _, tt := range tests {
		if got := string(m.Dispatch(t.Context(), []byte(tt.req))); got != tt.want {
			t.Errorf("Dispatch(%q) = %q, want %q", tt.req, got, tt.want)
		}
	}
	m.Dispatch(t.Context(), []byte("Set_Option a b c"))
	if string(gotArgs) != "a b c" {
		t.Errorf("args = %q", gotArgs)
	}
}

// TestPollingLoop runs the backdoor-shaped loop in fake time: reset is
// answered with ATR, the idle poll backs off to 100 ms, and a command is
// answered on the very next poll.
func TestPollingLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := rpctest.NewPollingHost()
		var resets atomic.Int32
		mux := &rpc.Mux{}
		mux.HandleFunc("Echo", func(ctx context.Context, args []byte) ([]byte, error) { return args, nil })
		loop := &rpc.Loop{Dial: host.Dial, Mux: mux, App: "toolbox", OnReset: func(context.Context) { resets.Add(1) }}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()

		if r, err := host.Command(ctx, "reset"); err != nil || r != "OK ATR toolbox" {
			t.Fatalf("reset: %q %v", r, err)
		}
		if r, _ := host.Command(ctx, "ping"); r != "OK " {
			t.Fatalf("ping: %q", r)
		}
		if r, _ := host.Command(ctx, "Echo a b"); r != "OK a b" {
			t.Fatalf("echo: %q", r)
		}
		if r, _ := host.Command(ctx, "OS_Frobnicate"); r != "ERROR Unknown Command" {
			t.Fatalf("unknown: %q", r)
		}
		synctest.Wait()
		if resets.Load() != 1 {
			t.Fatalf("OnReset ran %d times", resets.Load())
		}

		// Idle: delays 10+20+40+80 ms, then every 100 ms.
		before := host.Polls()
		time.Sleep(time.Second + time.Millisecond)
		idle := host.Polls() - before
		if idle < 12 || idle > 14 {
			t.Fatalf("%d polls in 1 s idle, want about 13 (10 ms doubling to 100 ms)", idle)
		}
		// A command waits at most one idle period, and is answered at once.
		start := time.Now()
		if r, _ := host.Command(ctx, "ping"); r != "OK " {
			t.Fatal(r)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("command took %v in fake time", d)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestLoopReopensWithBackoff: the VMX goes away; the loop reopens after
// 1 s, doubling while it keeps failing.
func TestLoopReopensWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dials []time.Time
		start := time.Now()
		host := rpctest.NewPollingHost()
		host.Shutdown()
		loop := &rpc.Loop{Mux: &rpc.Mux{}, App: "toolbox", Dial: func(ctx context.Context) (rpc.Channel, error) {
			dials = append(dials, time.Now())
			return host.Dial(ctx)
		}}
		ctx, cancel := context.WithTimeout(t.Context(), 16*time.Second)
		defer cancel()
		if err := loop.Run(ctx); err != nil {
			t.Fatal(err)
		}
		var offs []string
		for _, d := range dials {
			offs = append(offs, d.Sub(start).String())
		}
		if got, want := strings.Join(offs, " "), "0s 1s 3s 7s 15s"; got != want {
			t.Fatalf("dial times %s, want %s", got, want)
		}
	})
}

// TestEventLoop runs the vsock-shaped loop: the host sends first, replies
// follow, and heartbeats start after the first reply, one per second.
func TestEventLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		guest, host := rpctest.NewEventPipe()
		loop := &rpc.Loop{Mux: &rpc.Mux{}, App: "toolbox", Dial: dialOnce(guest)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()

		// No heartbeat before the first command.
		time.Sleep(3 * time.Second)
		if r, err := host.Command(ctx, "reset\x00"); err != nil || r != "OK ATR toolbox" {
			t.Fatalf("reset: %q %v", r, err)
		}
		// The PING that rode along with the reply went just before it
		// (Command skipped it); count PING packets over the next 5 s: one
		// a second.
		pings := 0
		deadline := time.Now().Add(5*time.Second + time.Millisecond)
		for time.Now().Before(deadline) {
			host.Conn.SetReadDeadline(deadline)
			content, err := datamap.ReadFrame(host.Conn, datamap.MaxGuestFrame)
			if err != nil {
				break
			}
			p, err := datamap.DecodePacket(content)
			if err != nil || p.Type != datamap.PacketPing {
				t.Fatalf("unexpected packet %+v %v", p, err)
			}
			pings++
		}
		if pings != 5 {
			t.Fatalf("%d heartbeats in 5 s, want 5", pings)
		}
		host.Conn.SetReadDeadline(time.Time{})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		host.Close()
	})
}

// TestEventLoopPingsRideAlongWithReplies: after the first reply a PING
// goes out at least once per heartbeat interval, as open-vm-tools sends
// it, but a PING due within half an interval is sent with a reply rather
// than on a wake-up of its own. Commands every 500 ms carry a PING each;
// commands every 1.5 s leave one timer PING between them; silence brings
// back the 1 s cadence. No gap between PINGs ever exceeds the interval.
func TestEventLoopPingsRideAlongWithReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := runEventLoop(t, &rpc.Loop{Mux: &rpc.Mux{}, App: "toolbox"}, nil)
		// 0-5 s: a ping every 500 ms; 5.5-10 s: every 1.5 s; then silence.
		for i := range 10 {
			r.send("ping")
			if i < 9 {
				time.Sleep(500 * time.Millisecond)
			}
		}
		for range 3 {
			time.Sleep(1500 * time.Millisecond)
			r.send("ping")
		}
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		pings, replies := r.stop()
		// Replies at 0, 0.5, ..., 4.5, 6, 7.5, 9 s, each with a PING;
		// timer PINGs at 5.5, 7, 8.5 (1 s after the last PING), then 10,
		// 11, 12 in the silence.
		var want []time.Duration
		for _, ms := range []time.Duration{0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5500, 6000, 7000, 7500, 8500, 9000, 10000, 11000, 12000} {
			want = append(want, ms*time.Millisecond)
		}
		for i := 1; i < len(pings); i++ {
			if gap := pings[i] - pings[i-1]; gap > time.Second {
				t.Errorf("%v without a PING before %v", gap, pings[i])
			}
		}
		if replies != 13 || !slices.Equal(pings, want) {
			t.Fatalf("%d replies, PINGs at %v; want 13 replies and PINGs at %v", replies, pings, want)
		}
	})
}

// eventRun is an event loop over a pipe, dialed once, and the host's
// record of every packet the guest sent, with its time since the start.
type eventRun struct {
	t       *testing.T
	host    *rpctest.EventHost
	start   time.Time
	packets chan eventPacket
	cancel  context.CancelFunc
	done    chan error
}

type eventPacket struct {
	at   time.Duration
	ping bool
}

// runEventLoop runs loop (Dial set here) over an event pipe whose guest
// end wrap may replace (nil keeps it).
func runEventLoop(t *testing.T, loop *rpc.Loop, wrap func(rpc.EventChannel) rpc.EventChannel) *eventRun {
	guest, host := rpctest.NewEventPipe()
	if wrap != nil {
		guest = wrap(guest)
	}
	loop.Dial = dialOnce(guest)
	ctx, cancel := context.WithCancel(t.Context())
	r := &eventRun{t: t, host: host, start: time.Now(), packets: make(chan eventPacket, 100), cancel: cancel, done: make(chan error)}
	go func() { r.done <- loop.Run(ctx) }()
	go func() {
		for {
			content, err := datamap.ReadFrame(host.Conn, datamap.MaxGuestFrame)
			if err != nil {
				close(r.packets)
				return
			}
			p, err := datamap.DecodePacket(content)
			if err != nil {
				t.Errorf("bad packet: %v", err)
			}
			r.packets <- eventPacket{time.Since(r.start), p.Type == datamap.PacketPing}
		}
	}()
	return r
}

// dialOnce returns ch at the first dial; later dials wait for the end.
func dialOnce(ch rpc.Channel) rpc.Dialer {
	dialed := false
	return func(ctx context.Context) (rpc.Channel, error) {
		if dialed {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		dialed = true
		return ch, nil
	}
}

// send writes a command as the host.
func (r *eventRun) send(cmd string) {
	frame := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte(cmd)}))
	if _, err := r.host.Conn.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

// stop ends the loop and returns the times of the guest's PINGs and the
// number of its replies.
func (r *eventRun) stop() (pings []time.Duration, replies int) {
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Fatal(err)
	}
	r.host.Close()
	for p := range r.packets {
		if p.ping {
			pings = append(pings, p.at)
		} else {
			replies++
		}
	}
	return pings, replies
}

// TestPollSleep checks that an idle polling loop sleeps through
// Loop.PollSleep with rpcin.c's back-off (10 ms doubling to 100 ms, reset
// by a command), and that a PollSleep failure reopens the channel.
func TestPollSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := rpctest.NewPollingHost()
		var mu sync.Mutex
		var sleeps []time.Duration
		fail := false
		dials := 0
		loop := &rpc.Loop{Mux: &rpc.Mux{}, App: "toolbox",
			Dial: func(ctx context.Context) (rpc.Channel, error) {
				mu.Lock()
				dials++
				mu.Unlock()
				return host.Dial(ctx)
			},
			PollSleep: func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				sleeps = append(sleeps, d)
				f := fail
				fail = false
				mu.Unlock()
				if f {
					return errors.New("timer gone")
				}
				select { // fake time
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
					return nil
				}
			}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()
		synctest.Wait() // idle, in a sleep
		mu.Lock()
		sleeps = nil
		mu.Unlock()
		if r, err := host.Command(ctx, "ping"); err != nil || r != "OK " {
			t.Fatalf("ping: %q %v", r, err)
		}
		time.Sleep(400 * time.Millisecond)
		if r, _ := host.Command(ctx, "ping"); r != "OK " {
			t.Fatal(r)
		}
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(sleeps)
		mu.Unlock()
		ms := time.Millisecond
		want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 100 * ms, 100 * ms}
		if len(got) < len(want)+1 || !slices.Equal(got[:len(want)], want) || got[len(got)-1] != 10*ms {
			t.Fatalf("sleeps %v, want %v..., then 10ms after the command", got, want)
		}
		mu.Lock()
		fail = true
		mu.Unlock()
		time.Sleep(2 * time.Second) // past the 1 s reopen delay
		mu.Lock()
		n := dials
		mu.Unlock()
		if n != 2 {
			t.Fatalf("%d dials after a PollSleep failure, want 2", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
