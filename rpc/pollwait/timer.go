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
