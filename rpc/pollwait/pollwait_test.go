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

// alarm is what the heartbeat uses of a Waiter or a TimerAlarm.
type alarm interface {
	Set(d time.Duration) error
	Wait(ctx context.Context) error
	Close() error
}

// TestSetMovesWait checks, for the timerfd Waiter and the Go-timer
// TimerAlarm, that a Set from another goroutine moves the deadline a
// parked Wait waits for (the heartbeat pushed back by a reply's PING),
// that a Set to 0 disarms it until the next Set, and that ending the
// context ends a Wait on a disarmed alarm. The bounds are lower bounds:
// a Wait that returned at the first deadline fails.
func TestSetMovesWait(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) alarm{
		"timerfd":  func(t *testing.T) alarm { return newWaiter(t) },
		"go timer": func(*testing.T) alarm { return NewTimerAlarm() },
	} {
		t.Run(name, func(t *testing.T) {
			a := mk(t)
			defer a.Close()
			start := time.Now()
			if err := a.Set(20 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- a.Wait(context.Background()) }()
			time.Sleep(5 * time.Millisecond)
			if err := a.Set(80 * time.Millisecond); err != nil { // now due at >= 85 ms
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second): // hang detector
				t.Fatal("Wait did not return after the moved deadline")
			}
			if got := time.Since(start); got < 85*time.Millisecond {
				t.Fatalf("Wait returned after %v, before the moved deadline (85 ms)", got)
			}

			// Disarmed: only ctx ends the Wait; a Set then arms it again.
			a.Set(10 * time.Millisecond)
			a.Set(0)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := a.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait on a disarmed alarm = %v, want the context's end", err)
			}
			if err := a.Set(time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if err := a.Wait(context.Background()); err != nil {
				t.Fatalf("Wait after re-arming: %v", err)
			}
		})
	}
}
