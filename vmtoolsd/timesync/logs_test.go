package timesync

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

func debugLogger(buf *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkLogged fails unless line is in out exactly when want is set.
func checkLogged(t *testing.T, out, line string, want bool) {
	t.Helper()
	if strings.Contains(out, line) != want {
		t.Errorf("%q logged: %v, want %v:\n%s", line, !want, want, out)
	}
}

var errHost = errors.New("host time unavailable")

// TestFailuresAreLogged: a failed one-shot sync is a warning, a failed
// periodic sync and a failed catch-up stop are debug lines; a sync that
// works logs none of them.
func TestFailuresAreLogged(t *testing.T) {
	for _, fail := range []bool{false, true} {
		// One-shot, at startup.
		var log testutil.SyncBuffer
		h := &fakeHost{offset: 10 * time.Millisecond}
		if fail {
			h.readErr = errHost
		}
		s := &Syncer{Host: h, Clock: &fakeClock{}, Logger: debugLogger(&log)}
		s.SetOption(t.Context(), "time.synchronize.tools.startup", "1")
		if h.reads != 1 {
			t.Fatalf("startup sync: %d host reads", h.reads)
		}
		checkLogged(t, log.String(), "one-shot time sync failed", fail)

		// Periodic.
		synctest.Test(t, func(t *testing.T) {
			var log testutil.SyncBuffer
			h := &fakeHost{offset: 10 * time.Millisecond}
			if fail {
				h.readErr = errHost
			}
			s := &Syncer{Host: h, Clock: &fakeClock{}, Logger: debugLogger(&log)}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			s.SetOption(ctx, "synctime", "1")
			time.Sleep(DefaultPeriod + time.Second)
			synctest.Wait()
			cancel()
			<-done
			if h.reads != 1 {
				t.Fatalf("periodic: %d host reads", h.reads)
			}
			checkLogged(t, log.String(), "periodic time sync failed", fail)
		})

		// A step, then the catch-up stop.
		var stepLog testutil.SyncBuffer
		h = &fakeHost{offset: time.Hour}
		if fail {
			h.stopErr = errHost
		}
		s = &Syncer{Host: h, Clock: &fakeClock{}, Logger: debugLogger(&stepLog)}
		if d, err := s.Sync(t.Context(), false, "test"); err != nil || d.Action != ActionStep || h.stopped != 1 {
			t.Fatalf("step: %+v %v, %d catch-up stops", d, err, h.stopped)
		}
		checkLogged(t, stepLog.String(), "stop catch-up failed", fail)
	}
}
