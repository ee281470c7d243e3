package timesync

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

type fakeHost struct {
	mu      sync.Mutex
	offset  time.Duration // host - guest
	maxLag  time.Duration
	reads   int
	stopped int
	readErr error // HostTime fails with it
	stopErr error // StopCatchup fails with it
}

func (h *fakeHost) HostTime(ctx context.Context) (time.Time, time.Duration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads++
	if h.readErr != nil {
		return time.Time{}, 0, h.readErr
	}
	return base.Add(h.offset), h.maxLag, nil
}

func (h *fakeHost) readCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reads
}

func (h *fakeHost) StopCatchup(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped++
	return h.stopErr
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock never touches the real clock.
type fakeClock struct {
	mu          sync.Mutex
	steps, slew []time.Duration
}

func (c *fakeClock) Now() time.Time { return base }
func (c *fakeClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, d)
	return nil
}
func (c *fakeClock) Slew(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slew = append(c.slew, d)
	return nil
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		name     string
		offset   time.Duration
		maxLag   time.Duration
		daemon   string
		backward bool
		noSlew   bool
		want     Action
	}{
		{"in sync", 100 * time.Millisecond, 0, "", false, false, ActionNone},
		{"within host max lag", 900 * time.Millisecond, time.Second, "", false, false, ActionNone},
		{"exactly the host max lag", time.Second, time.Second, "", false, false, ActionNone},
		{"exactly the host max lag, ahead", -time.Second, time.Second, "", true, false, ActionNone},
		{"behind, no daemon: step", 5 * time.Second, 0, "", false, false, ActionStep},
		{"behind, chrony: slew", 5 * time.Second, 0, "chronyd", false, false, ActionSlew},
		{"behind, chrony, slewing off: leave", 5 * time.Second, 0, "chronyd", false, true, ActionLeave},
		{"resume jump, chrony: step", 2 * time.Hour, 0, "chronyd", false, false, ActionStep},
		{"ahead, backward not allowed: slew", -5 * time.Second, 0, "", false, false, ActionSlew},
		{"ahead, backward allowed: step", -5 * time.Second, 0, "", true, false, ActionStep},
		{"far ahead, ntpd, no backward: slew", -2 * time.Hour, 0, "ntpd", false, false, ActionSlew},
		{"far ahead, ntpd, backward: step", -2 * time.Hour, 0, "ntpd", true, false, ActionStep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{offset: tt.offset, maxLag: tt.maxLag}
			c := &fakeClock{}
			s := &Syncer{Host: h, Clock: c, Daemon: func() string { return tt.daemon }}
			if tt.noSlew {
				s.SetOption(t.Context(), "time.synchronize.tools.slewCorrection", "0")
			}
			d, err := s.Sync(t.Context(), tt.backward, "test")
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tt.want || d.Offset != tt.offset {
				t.Fatalf("decision %+v, want %s", d, tt.want)
			}
			switch tt.want {
			case ActionStep:
				if len(c.steps) != 1 || c.steps[0] != tt.offset || h.stopped != 1 || len(c.slew) != 0 {
					t.Fatalf("steps %v slews %v stopcatchup %d", c.steps, c.slew, h.stopped)
				}
			case ActionSlew:
				if len(c.slew) != 1 || c.slew[0] != tt.offset || len(c.steps) != 0 {
					t.Fatalf("steps %v slews %v", c.steps, c.slew)
				}
			default:
				if len(c.slew)+len(c.steps) != 0 {
					t.Fatalf("clock touched: %v %v", c.steps, c.slew)
				}
			}
		})
	}
	// The threshold comes from tools.conf.
	c := &fakeClock{}
	s := &Syncer{Host: &fakeHost{offset: 30 * time.Second}, Clock: c, Daemon: func() string { return "chronyd" },
		Settings: func() Settings { return Settings{StepThreshold: 10 * time.Second} }}
	if d, _ := s.Sync(t.Context(), false, "t"); d.Action != ActionStep {
		t.Fatalf("threshold from settings: %+v", d)
	}
}

func TestTimeSynchronizeCommand(t *testing.T) {
	h := &fakeHost{offset: -10 * time.Second}
	c := &fakeClock{}
	settings := Settings{}
	s := &Syncer{Host: h, Clock: c, Settings: func() Settings { return settings }}
	mux := &rpc.Mux{}
	s.Register(mux)
	if got := string(mux.Dispatch(t.Context(), []byte("Time_Synchronize 1"))); got != "OK " {
		t.Fatal(got)
	}
	if len(c.steps) != 1 || c.steps[0] != -10*time.Second {
		t.Fatalf("backward allowed: steps %v", c.steps)
	}
	if got := string(mux.Dispatch(t.Context(), []byte("Time_Synchronize 0"))); got != "OK " || len(c.steps) != 1 || len(c.slew) != 1 {
		t.Fatalf("%q steps %v slews %v", got, c.steps, c.slew)
	}
	settings.DisableAll = true
	reads := h.reads
	if got := string(mux.Dispatch(t.Context(), []byte("Time_Synchronize 1"))); got != "OK " || h.reads != reads {
		t.Fatalf("disable-all: %q, host read %d times", got, h.reads-reads)
	}
	noHost := &Syncer{Clock: c}
	mux2 := &rpc.Mux{}
	noHost.Register(mux2)
	if got := string(mux2.Dispatch(t.Context(), []byte("Time_Synchronize 0"))); got != "ERROR Unable to sync time" {
		t.Fatal(got)
	}
}

func TestOneShotOptions(t *testing.T) {
	h := &fakeHost{offset: 5 * time.Second}
	c := &fakeClock{}
	s := &Syncer{Host: h, Clock: c}
	ctx := t.Context()
	if !s.SetOption(ctx, "time.synchronize.tools.startup", "1") || len(c.steps) != 1 {
		t.Fatalf("startup sync: %v", c.steps)
	}
	s.SetOption(ctx, "time.synchronize.tools.startup", "0")
	s.SetOption(ctx, "time.synchronize.tools.startup", "1")
	if len(c.steps) != 1 {
		t.Fatal("startup sync must run once per process")
	}
	// synctime 0->1 with tools.enable: one-shot.
	s.SetOption(ctx, "time.synchronize.tools.enable", "1")
	s.SetOption(ctx, "synctime", "1")
	s.SetOption(ctx, "synctime", "1") // no transition
	if len(c.steps) != 2 {
		t.Fatalf("enable one-shot: %v", c.steps)
	}
	for _, o := range []string{"synctime.period", "time.synchronize.tools.percentCorrection", "time.synchronize.guest.resync"} {
		if !s.SetOption(ctx, o, "5") {
			t.Errorf("%s not acknowledged", o)
		}
	}
	if s.SetOption(ctx, "broadcastIP", "1") {
		t.Error("foreign option claimed")
	}
}

func TestPeriodicLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &fakeHost{offset: 10 * time.Millisecond}
		s := &Syncer{Host: h, Clock: &fakeClock{}}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if h.reads != 0 {
			t.Fatalf("synctime off, yet %d reads", h.reads)
		}
		s.SetOption(ctx, "synctime.period", "30")
		s.SetOption(ctx, "synctime", "1")
		time.Sleep(95 * time.Second)
		synctest.Wait()
		if h.reads != 3 {
			t.Fatalf("period 30 s over 95 s: %d reads", h.reads)
		}
		s.SetOption(ctx, "synctime", "0")
		synctest.Wait()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if h.reads != 3 {
			t.Fatalf("after synctime 0: %d reads", h.reads)
		}
		cancel()
		<-done
	})
}

func TestProcDaemon(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, comm string) {
		os.MkdirAll(filepath.Join(root, pid), 0o755)
		os.WriteFile(filepath.Join(root, pid, "comm"), []byte(comm+"\n"), 0o644)
	}
	mk("1", "init")
	mk("self", "chronyd") // not a pid
	d := ProcDaemon(root)
	if got := d(); got != "" {
		t.Fatalf("got %q", got)
	}
	mk("412", "systemd-timesyn")
	if got := d(); got != "systemd-timesyncd" {
		t.Fatalf("got %q", got)
	}
	if ProcDaemon(filepath.Join(root, "nope"))() != "" {
		t.Fatal("missing proc")
	}
}
