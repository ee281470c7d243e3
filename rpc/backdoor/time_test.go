package backdoor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc/backdoor"
	simbd "github.com/govmtools/govmtools/vmxsim/backdoor"
)

var hostNow = time.Date(2031, 5, 6, 7, 8, 9, 123456000, time.UTC)

// TestReadHostTimeFallback: GETTIMEFULL_WITH_LAG when the VMX has it,
// then GETTIMEFULL, then GETTIME; none answering is ErrNoHostTime.
func TestReadHostTimeFallback(t *testing.T) {
	for _, tt := range []struct {
		unsupported []uint16
		want        uint16
	}{
		{nil, backdoor.CmdGetTimeFullWithLag},
		{[]uint16{55}, backdoor.CmdGetTimeFull},
		{[]uint16{55, 46}, backdoor.CmdGetTime},
		{[]uint16{55, 46, 23}, 0},
	} {
		_, _, port := newSim(t, simbd.Options{
			Now:         func() time.Time { return hostNow },
			MaxTimeLag:  250000,
			Unsupported: tt.unsupported,
		})
		got, err := backdoor.ReadHostTime(port)
		if tt.want == 0 {
			if !errors.Is(err, backdoor.ErrNoHostTime) {
				t.Fatalf("nothing supported: %+v %v", got, err)
			}
			continue
		}
		if err != nil || got.Command != tt.want || !got.Time.Equal(hostNow) || got.MaxLag != 250*time.Millisecond {
			t.Fatalf("unsupported %v: %+v %v, want command %d at %v", tt.unsupported, got, err, tt.want, hostNow)
		}
		// Each older command was asked only after the newer refused.
		if n := len(port.log); n != 1+len(tt.unsupported) {
			t.Fatalf("unsupported %v: %d calls", tt.unsupported, n)
		}
	}
}

// TestReadHostTimeBadAnswer: microseconds out of range are a protocol
// error, not a time.
func TestReadHostTimeBadAnswer(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	port.after = func(n int, r *backdoor.Regs) { r.BX = 1_000_000 }
	if _, err := backdoor.ReadHostTime(port); !errors.Is(err, backdoor.ErrProtocol) {
		t.Fatalf("usec 1000000: %v", err)
	}
}

// TestHostClock: the host clock as timesync sees it (the simulated host
// runs two hours ahead), the max lag, STOPCATCHUP reaching the VMX, and the
// memory of which command the VMX answers.
func TestHostClock(t *testing.T) {
	_, b, port := newSim(t, simbd.Options{Unsupported: []uint16{backdoor.CmdGetTimeFullWithLag}})
	b.SetClockOffset(2 * time.Hour)
	c := &backdoor.HostClock{H: port}
	for i := range 3 {
		now, lag, err := c.HostTime(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if off := now.Sub(time.Now()) - 2*time.Hour; off.Abs() > time.Second || lag != 500*time.Millisecond {
			t.Fatalf("read %d: host - guest - 2h = %v, max lag %v", i, off, lag)
		}
	}
	with := 0
	for _, r := range port.log {
		if uint16(r.CX) == backdoor.CmdGetTimeFullWithLag {
			with++
		}
	}
	if with != 1 {
		t.Fatalf("GETTIMEFULL_WITH_LAG asked %d times; the refusal is remembered", with)
	}
	if err := c.StopCatchup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.StopCatchups != 1 || st.TimeReads < 3 || st.ClockOffset != "2h0m0s" {
		t.Fatalf("stats %+v", st)
	}
}

// TestHostClockNotReady: without VMware detection nothing reaches the
// backdoor.
func TestHostClockNotReady(t *testing.T) {
	_, _, port := newSim(t, simbd.Options{})
	c := &backdoor.HostClock{H: port, Ready: func() error { return backdoor.ErrNotVMware }}
	if _, _, err := c.HostTime(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
		t.Fatalf("HostTime: %v", err)
	}
	if err := c.StopCatchup(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
		t.Fatalf("StopCatchup: %v", err)
	}
	if port.calls != 0 {
		t.Fatalf("%d backdoor calls without detection", port.calls)
	}
}
