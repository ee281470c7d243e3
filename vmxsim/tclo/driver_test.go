package tclo

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// fakeHost is the VMX core as the driver sees it: a VM that is on.
type fakeHost struct {
	mu      sync.Mutex
	off     bool
	pending string
	gone    int
	changes int // Changed calls
	remarks []string
}

func (h *fakeHost) Admit() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.off {
		return errors.New("off")
	}
	return nil
}

func (h *fakeHost) PendingPower() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pending
	h.pending = ""
	return p
}

func (h *fakeHost) ToolsGone() { h.mu.Lock(); h.gone++; h.mu.Unlock() }

func (h *fakeHost) Changed() { h.mu.Lock(); h.changes++; h.mu.Unlock() }

func (h *fakeHost) changed() int { h.mu.Lock(); defer h.mu.Unlock(); return h.changes }

func (h *fakeHost) Remark(format string, args ...any) {
	h.mu.Lock()
	h.remarks = append(h.remarks, format)
	h.mu.Unlock()
}

func (h *fakeHost) Trace(string, []byte) {}

// fakeGuest answers TCLO commands on the guest end of a pipe.
func fakeGuest(t *testing.T, conn net.Conn, answer func(cmd string) string) {
	for {
		content, err := datamap.ReadFrame(conn, 1<<20)
		if err != nil {
			return
		}
		p, err := datamap.DecodePacket(content)
		if err != nil {
			t.Errorf("guest got bad packet: %v", err)
			return
		}
		reply := answer(string(p.Payload))
		if reply == "" {
			continue // stay silent
		}
		conn.Write(datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte(reply), HasPayload: true})))
	}
}

// serve runs d on the host end of a pipe until ctx ends or the session
// does, and returns the session's error.
func serve(ctx context.Context, t *testing.T, d *Driver, host net.Conn) error {
	p := NewStreamPeer(host, func(err error) { t.Logf("refused: %v", err) })
	err := d.Serve(ctx, p)
	p.Close()
	p.Wait()
	return err
}

// TestDriver runs the driver in fake time: the startup sequence (with a
// pending power command), pings at the interval, a queued command, and
// the heartbeat colours as answers stop.
func TestDriver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{pending: "OS_PowerOn"}
		d := New(h, Options{PingInterval: time.Second, ExchangeTimeout: time.Minute, ToolsTimeout: 10 * time.Second})
		host, guest := net.Pipe()
		var mu sync.Mutex
		var cmdList []string
		silent := false
		cmds := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), cmdList...) }
		go fakeGuest(t, guest, func(cmd string) string {
			mu.Lock()
			defer mu.Unlock()
			cmdList = append(cmdList, cmd)
			if silent {
				return ""
			}
			if cmd == "reset" {
				return "OK ATR toolbox"
			}
			return "OK "
		})
		if running, hb := d.Heartbeat(time.Now()); running || hb != HeartbeatGray {
			t.Fatalf("before any session: %v %s", running, hb)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- serve(ctx, t, d, host) }()
		synctest.Wait()
		want := []string{"reset", "ping"}
		for _, o := range DefaultSetOptions() {
			want = append(want, "Set_Option "+o)
		}
		want = append(want, "Capabilities_Register", "OS_PowerOn")
		if strings.Join(cmds(), "|") != strings.Join(want, "|") {
			t.Fatalf("startup:\n got %q\nwant %q", cmds(), want)
		}
		if running, hb := d.Heartbeat(time.Now()); !running || hb != HeartbeatGreen || !d.Bound() {
			t.Fatalf("after startup: %v %s", running, hb)
		}
		n := len(cmds())
		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		if got := len(cmds()) - n; got != 5 {
			t.Fatalf("%d pings in 5 s, want 5", got)
		}
		if got, err := d.Send(ctx, "Echo"); err != nil || string(got) != "OK " {
			t.Fatalf("Send: %q %v", got, err)
		}

		mu.Lock()
		silent = true
		mu.Unlock()
		colours := map[time.Duration]string{1500 * time.Millisecond: HeartbeatGreen, 3500 * time.Millisecond: HeartbeatYellow, 6 * time.Second: HeartbeatRed}
		start := time.Now()
		for _, at := range []time.Duration{1500 * time.Millisecond, 3500 * time.Millisecond, 6 * time.Second} {
			time.Sleep(at - time.Since(start))
			if _, hb := d.Heartbeat(time.Now()); hb != colours[at] {
				t.Fatalf("at %v silent: heartbeat %s, want %s", at, hb, colours[at])
			}
		}
		cancel()
		<-done
		guest.Close()
		if h.gone != 1 || d.Bound() {
			t.Fatalf("after the session: ToolsGone %d times, bound %v", h.gone, d.Bound())
		}
		if _, err := d.Send(t.Context(), "Echo"); !errors.Is(err, ErrNoTools) {
			t.Fatalf("Send without tools: %v", err)
		}
	})
}

// TestDriverHeartbeatUntil runs a session in fake time: answers that
// keep the heartbeat green do not call Host.Changed, binding does; at
// every step HeartbeatUntil's time is the next change of colour (the
// colour holds up to it and differs at it); an answer after a missed
// ping, turning yellow back to green, calls Changed; so does the
// channel's close, after which the tools go gray at ToolsTimeout.
func TestDriverHeartbeatUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{}
		d := New(h, Options{PingInterval: time.Second, ExchangeTimeout: time.Minute, ToolsTimeout: 10 * time.Second})
		if _, _, until := d.HeartbeatUntil(time.Now()); !until.IsZero() {
			t.Fatalf("before any session: until %v", until)
		}
		host, guest := net.Pipe()
		var mu sync.Mutex
		var delay time.Duration
		go fakeGuest(t, guest, func(cmd string) string {
			mu.Lock()
			wait := delay
			delay = 0
			mu.Unlock()
			time.Sleep(wait)
			if cmd == "reset" {
				return "OK ATR toolbox"
			}
			return "OK "
		})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- serve(ctx, t, d, host) }()
		// check asserts the colour at now and that until is its end.
		check := func(what, want string) time.Time {
			t.Helper()
			now := time.Now()
			_, hb, until := d.HeartbeatUntil(now)
			if hb != want {
				t.Fatalf("%s: heartbeat %s, want %s", what, hb, want)
			}
			if until.IsZero() {
				return until
			}
			_, before := d.Heartbeat(until.Add(-time.Nanosecond))
			_, at := d.Heartbeat(until)
			if !until.After(now) || before != hb || at == hb {
				t.Fatalf("%s: until %v after now: %v; colour before %s, at %s", what, until.Sub(now), until.After(now), before, at)
			}
			return until
		}
		synctest.Wait()
		if n := h.changed(); n != 1 {
			t.Fatalf("after binding: Changed %d times, want 1", n)
		}
		first := check("bound", HeartbeatGreen)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := h.changed(); n != 1 {
			t.Fatalf("after 5 answered pings: Changed %d times, want 1", n)
		}
		if again := check("answered", HeartbeatGreen); !again.After(first) {
			t.Fatalf("answers did not move the green window on: %v, then %v", first, again)
		}
		mu.Lock()
		delay = 5 * time.Second // the next ping, 1 s on, is answered 5 s late
		mu.Unlock()
		time.Sleep(3500 * time.Millisecond)
		check("3.5 s since the last answer", HeartbeatYellow)
		if n := h.changed(); n != 1 {
			t.Fatalf("turning yellow by time: Changed %d times, want 1", n)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if n := h.changed(); n != 2 {
			t.Fatalf("after the late answer: Changed %d times, want 2", n)
		}
		check("answered late", HeartbeatGreen)
		cancel()
		<-done
		guest.Close()
		if n := h.changed(); n != 3 {
			t.Fatalf("after the close: Changed %d times, want 3", n)
		}
		gray := time.Now().Add(10 * time.Second)
		for _, c := range []string{HeartbeatGreen, HeartbeatYellow, HeartbeatRed} {
			if until := check("closed", c); until.After(gray.Add(time.Millisecond)) {
				t.Fatalf("closed, %s until %v, after the tools timeout", c, until)
			} else {
				time.Sleep(time.Until(until))
			}
			if running, _ := d.Heartbeat(time.Now()); !running {
				break
			}
		}
		if running, _, until := d.HeartbeatUntil(time.Now()); running || !until.IsZero() {
			t.Fatalf("after the tools timeout: running %v, until %v", running, until)
		}
	})
}

// TestDriverRefusals: a bad reset reply closes the channel without binding
// it, and a VM that is off refuses the channel at once.
func TestDriverRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{}
		d := New(h, Options{})
		host, guest := net.Pipe()
		go fakeGuest(t, guest, func(string) string { return "ERROR nope" })
		if err := serve(t.Context(), t, d, host); err == nil || !strings.Contains(err.Error(), "bad reset reply") {
			t.Fatalf("err = %v", err)
		}
		if running, _ := d.Heartbeat(time.Now()); running || h.gone != 0 {
			t.Fatalf("tools running after a bad reset (gone %d)", h.gone)
		}
		guest.Close()

		h.off = true
		host, guest = net.Pipe()
		defer guest.Close()
		if err := serve(t.Context(), t, d, host); err == nil {
			t.Fatal("channel served while the VM is off")
		}
	})
}
