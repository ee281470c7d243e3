package pollwait

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newWaiter(t *testing.T) *Waiter {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestSleepLasts checks that each Sleep lasts at least its duration,
// including back-to-back sleeps of the poll back-off (the delay is the
// thing under test here, so the real clock is right).
func TestSleepLasts(t *testing.T) {
	w := newWaiter(t)
	for _, d := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, time.Millisecond, 40 * time.Millisecond} {
		start := time.Now()
		if err := w.Sleep(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got < d {
			t.Errorf("Sleep(%v) returned after %v", d, got)
		}
	}
}

// TestSleepCancel checks that ending the context ends a long sleep, and
// that the Waiter sleeps normally afterwards (the deadline that woke it
// is gone).
func TestSleepCancel(t *testing.T) {
	w := newWaiter(t)
	// The context ends while Sleep is parked in the poller (most runs).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Sleep(ctx, time.Hour) }()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep after its context ended = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second): // hang detector
		t.Fatal("Sleep did not return after its context was cancelled")
	}
	if err := w.Sleep(ctx, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sleep on an ended context = %v", err)
	}
	start := time.Now()
	if err := w.Sleep(context.Background(), 5*time.Millisecond); err != nil {
		t.Fatalf("Sleep after a cancelled one: %v", err)
	}
	if got := time.Since(start); got < 5*time.Millisecond {
		t.Errorf("Sleep after a cancelled one returned after %v", got)
	}
}

// TestZero checks that a zero or negative duration does not sleep.
func TestZero(t *testing.T) {
	w := newWaiter(t)
	for _, d := range []time.Duration{0, -time.Second} {
		if err := w.Sleep(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTimerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Timer(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Timer on an ended context = %v", err)
	}
	if err := Timer(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
