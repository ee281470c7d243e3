package timesync

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestTrimArgs: Time_Synchronize's argument loses surrounding spaces and
// trailing NULs; nothing is left of an empty or all-space argument.
func TestTrimArgs(t *testing.T) {
	for in, want := range map[string]string{"": "", " ": "", " 1 \x00": "1", "1\x00\x00": "1", "  0": "0", "1 0": "1 0"} {
		if got := trim([]byte(in)); got != want {
			t.Errorf("trim(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPeriodOption: synctime.period of 0 or less, or not a number, is the
// default period; a positive number is taken in seconds.
func TestPeriodOption(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": DefaultPeriod, "-5": DefaultPeriod, "x": DefaultPeriod, "1": time.Second, "90": 90 * time.Second} {
		s := &Syncer{}
		s.SetOption(t.Context(), "synctime.period", in)
		if s.period != want {
			t.Errorf("synctime.period=%s: %v, want %v", in, s.period, want)
		}
	}
}

// TestPeriodicLoopDefaultPeriod: with synctime on and no synctime.period
// ever received, the loop syncs every DefaultPeriod.
func TestPeriodicLoopDefaultPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{offset: 10 * time.Millisecond}
		s := &Syncer{Host: h, Clock: &fakeClock{}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		s.SetOption(ctx, "synctime", "1")
		time.Sleep(DefaultPeriod - time.Second)
		synctest.Wait()
		if n := h.readCount(); n != 0 {
			t.Fatalf("%d reads before the default period", n)
		}
		time.Sleep(2*DefaultPeriod + 2*time.Second)
		synctest.Wait()
		if n := h.readCount(); n != 3 {
			t.Fatalf("%d reads over three default periods, want 3", n)
		}
		cancel()
		<-done
	})
}
