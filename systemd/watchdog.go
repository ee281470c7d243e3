package systemd

import (
	"context"
	"sync/atomic"
	"time"
)

// Watchdog feeds systemd's watchdog only while the daemon is alive by its
// own measure: Alive is called by the part whose stall should get the
// daemon restarted (vmtoolsd: the TCLO loop, after each exchange with the
// host). If Alive is not called for a whole Timeout, the watchdog stops
// being fed and systemd restarts the service.
type Watchdog struct {
	Notifier *Notifier
	// Timeout is WATCHDOG_USEC; the watchdog is fed every Timeout/2.
	Timeout time.Duration

	last atomic.Int64 // unix nanoseconds of the last Alive
}

// Alive records a sign of life. It is cheap and safe to call from any
// goroutine.
func (w *Watchdog) Alive() { w.last.Store(time.Now().UnixNano()) }

// Run feeds the watchdog until ctx ends. It does nothing without a
// Timeout.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.Timeout <= 0 {
		return nil
	}
	t := time.NewTicker(w.Timeout / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if last := w.last.Load(); last != 0 && now.Sub(time.Unix(0, last)) < w.Timeout {
				w.Notifier.Watchdog()
			}
		}
	}
}
