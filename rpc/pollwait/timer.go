package pollwait

import (
	"context"
	"time"
)

// Timer sleeps with a Go timer: what a Waiter falls back to, and what
// code under testing/synctest must use (a timerfd runs on the real
// clock).
func Timer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// TimerAlarm is Waiter's Set and Wait on a Go timer: the fallback off
// Linux, and what code under testing/synctest must use. Each Set arms a
// runtime timer, which sysmon sleeps until; a Waiter's timerfd does not.
// One goroutine at a time may call Wait; Set may be called from any.
type TimerAlarm struct {
	t *time.Timer
}

// NewTimerAlarm returns a disarmed alarm.
func NewTimerAlarm() *TimerAlarm {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &TimerAlarm{t: t}
}

// Set arms the alarm to ring once after d, replacing any earlier setting
// and any ring not yet waited for; d <= 0 disarms it.
func (a *TimerAlarm) Set(d time.Duration) error {
	if d <= 0 {
		a.t.Stop()
		return nil
	}
	a.t.Reset(d) // since Go 1.23 no stale ring survives a Reset
	return nil
}

// Wait returns once the alarm set last has rung, or with ctx's error.
func (a *TimerAlarm) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-a.t.C:
		return nil
	}
}

// Sleep is Set and then Wait.
func (a *TimerAlarm) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	a.Set(d)
	return a.Wait(ctx)
}

// Close stops the timer.
func (a *TimerAlarm) Close() error {
	a.t.Stop()
	return nil
}
