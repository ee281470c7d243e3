// Package timesync owns guest time synchronization with the host: the
// TCLO command Time_Synchronize, the synctime and time.synchronize.*
// options, the periodic sync loop, and the policy that decides between
// stepping the clock, slewing it, and leaving it alone.
//
// # Policy
//
// open-vm-tools steps the clock whenever the guest is behind by more than
// the host's allowed lag, even while chronyd or ntpd disciplines it
// (open-vm-tools#302; vmware/vic#2971: "slamming" the clock breaks
// deadlines). This package decides explicitly, and logs each decision:
//
//   - |host - guest| within the tolerance (the host's max lag, at least
//     Tolerance): nothing to do;
//   - a time daemon (chronyd, ntpd, systemd-timesyncd) is active: step
//     only when the offset exceeds StepThreshold (a resume or vMotion
//     jump the daemon would take long to slew away); otherwise slew;
//   - no daemon: step when the guest is behind (or ahead, if backward
//     steps are allowed), as vmtoolsd does; otherwise slew;
//   - a backward step is never taken unless allowed; the clock is slewed
//     back instead;
//   - slewing is off when time.synchronize.tools.slewCorrection is 0.
//
// The host time source and the clock are injected: HostClock reads the
// host (the backdoor's GETTIMEFULL_WITH_LAG), Clock steps and slews the
// guest. Tests use fakes; SystemClock, the real one, is only built by
// vmtoolsd/daemon outside vmxsim.
package timesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

// HostClock reads the host's time: now, and the host's max lag (how far
// the guest may lag behind before the host considers it out of sync,
// BDOOR_CMD_GETTIMEFULL_WITH_LAG's ECX). The time must be the host's at
// the moment HostTime returns: the policy compares it with Clock.Now right
// after. rpc/backdoor's HostClock is the real one; over vsock and vmxsim's
// unix sockets there is none. The signature uses only standard types so
// that the backdoor package implements it without importing this one.
type HostClock interface {
	HostTime(ctx context.Context) (now time.Time, maxLag time.Duration, err error)
}

// CatchupStopper is optionally implemented by a HostClock: after a step
// the host is told to stop catching up lost ticks (BDOOR_CMD_STOPCATCHUP).
type CatchupStopper interface {
	StopCatchup(ctx context.Context) error
}

// Clock is the guest clock.
type Clock interface {
	Now() time.Time
	// Step sets the clock forward (or back) by d at once.
	Step(d time.Duration) error
	// Slew makes the clock gain (or lose) d gradually.
	Slew(d time.Duration) error
}

// Defaults of the policy.
const (
	DefaultStepThreshold = 60 * time.Second
	DefaultTolerance     = 500 * time.Millisecond
	DefaultPeriod        = 60 * time.Second
)

// ErrUnableToSync is the protocol's failure text for Time_Synchronize.
const ErrUnableToSync = rpc.Failure("Unable to sync time")

// Settings come from tools.conf [timeSync].
type Settings struct {
	DisableAll      bool          // disable-all
	DisablePeriodic bool          // disable-periodic
	StepThreshold   time.Duration // step-threshold (govmtools); 0 = default
}

// Action is what a sync did.
type Action string

// Actions.
const (
	ActionNone  Action = "none"
	ActionStep  Action = "step"
	ActionSlew  Action = "slew"
	ActionLeave Action = "leave" // offset left to the time daemon / to slewing being off
)

// Decision is the outcome of one sync, as logged.
type Decision struct {
	Action Action
	Offset time.Duration // host - guest
	Daemon string        // active time daemon, if any
	Reason string
}

// Syncer synchronizes the guest clock with the host.
type Syncer struct {
	Host  HostClock // nil: no host time available on this transport
	Clock Clock
	// Daemon returns the name of the active time daemon, or "".
	Daemon func() string
	// Settings returns the current tools.conf settings; nil means zero.
	Settings func() Settings
	// Tolerance is the smallest offset acted on; 0 means the default.
	Tolerance time.Duration
	Logger    *slog.Logger

	mu            sync.Mutex
	synctime      bool
	period        time.Duration
	startupSync   bool
	startupBack   bool
	enableOneShot bool
	slew          bool
	slewSet       bool
	startupDone   bool
	wake          chan struct{}
}

// Register adds Time_Synchronize to mux.
func (s *Syncer) Register(mux *rpc.Mux) {
	mux.HandleFunc("Time_Synchronize", func(ctx context.Context, args []byte) ([]byte, error) {
		backward := len(args) > 0 && trim(args) == "1"
		if _, err := s.Sync(ctx, backward, "Time_Synchronize"); err != nil {
			return nil, ErrUnableToSync
		}
		return nil, nil
	})
}

func trim(b []byte) string {
	for len(b) > 0 && (b[0] == ' ' || b[len(b)-1] == 0 || b[len(b)-1] == ' ') {
		if b[0] == ' ' {
			b = b[1:]
		} else {
			b = b[:len(b)-1]
		}
	}
	return string(b)
}

// SetOption handles synctime, synctime.period and time.synchronize.*. It
// reports whether the option is one of them. Startup sync runs once per
// process, when time.synchronize.tools.startup arrives as 1.
func (s *Syncer) SetOption(ctx context.Context, name, value string) bool {
	on := value == "1"
	s.mu.Lock()
	var oneShot, backward bool
	switch name {
	case "synctime":
		was := s.synctime
		s.synctime = on
		if on && !was && s.enableOneShot {
			oneShot = true
		}
		s.poke()
	case "synctime.period":
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 {
			n = int(DefaultPeriod / time.Second)
		}
		s.period = time.Duration(n) * time.Second
		s.poke()
	case "time.synchronize.tools.startup":
		s.startupSync = on
		if on && !s.startupDone {
			s.startupDone = true
			oneShot, backward = true, s.startupBack
		}
	case "time.synchronize.tools.startup.backward":
		s.startupBack = on
	case "time.synchronize.tools.enable":
		s.enableOneShot = on
	case "time.synchronize.tools.slewCorrection":
		s.slew, s.slewSet = on, true
	case "time.synchronize.tools.percentCorrection", "time.synchronize.guest.resync", "time.synchronize.guest.resync.timeout",
		"time.synchronize.continue", "time.synchronize.restore", "time.synchronize.resume.disk", "time.synchronize.shrink",
		"time.synchronize.resume.host", "time.synchronize.allow":
		// Acknowledged: the policy above replaces these knobs.
	default:
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()
	if oneShot {
		if _, err := s.Sync(ctx, backward, name); err != nil {
			s.logger().Warn("one-shot time sync failed", "trigger", name, "err", err)
		}
	}
	return true
}

// poke wakes the periodic loop. Preconditions: s.mu is held.
func (s *Syncer) poke() {
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the periodic sync while synctime is 1, until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	wake := s.wake
	s.mu.Unlock()
	var tick <-chan time.Time
	var t *time.Ticker
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	cur := time.Duration(0)
	for {
		s.mu.Lock()
		on, period := s.synctime, s.period
		s.mu.Unlock()
		if period <= 0 {
			period = DefaultPeriod
		}
		switch {
		case !on && t != nil:
			t.Stop()
			t, tick, cur = nil, nil, 0
		case on && (t == nil || cur != period):
			if t != nil {
				t.Stop()
			}
			t = time.NewTicker(period)
			tick, cur = t.C, period
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick:
			if s.settings().DisablePeriodic {
				continue
			}
			if _, err := s.Sync(ctx, false, "periodic"); err != nil {
				s.logger().Debug("periodic time sync failed", "err", err)
			}
		}
	}
}

// ErrNoHostClock is returned when the transport offers no host time.
var ErrNoHostClock = errors.New("timesync: no host time source on this transport")

// Sync compares the guest clock with the host and corrects it according
// to the policy. backward allows a backward step.
func (s *Syncer) Sync(ctx context.Context, backward bool, trigger string) (Decision, error) {
	st := s.settings()
	if st.DisableAll {
		s.logger().Info("time sync skipped: [timeSync] disable-all", "trigger", trigger)
		return Decision{Action: ActionNone, Reason: "disabled in tools.conf"}, nil
	}
	if s.Host == nil {
		return Decision{}, ErrNoHostClock
	}
	now, maxLag, err := s.Host.HostTime(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("timesync: read host time: %w", err)
	}
	d := s.decide(now, maxLag, backward, st)
	lg := s.logger().With("trigger", trigger, "offset", d.Offset, "daemon", d.Daemon, "reason", d.Reason)
	switch d.Action {
	case ActionStep:
		if err := s.Clock.Step(d.Offset); err != nil {
			return d, fmt.Errorf("timesync: step by %v: %w", d.Offset, err)
		}
		if cs, ok := s.Host.(CatchupStopper); ok {
			if err := cs.StopCatchup(ctx); err != nil {
				lg.Debug("stop catch-up failed", "err", err)
			}
		}
		lg.Warn("guest clock stepped")
	case ActionSlew:
		if err := s.Clock.Slew(d.Offset); err != nil {
			return d, fmt.Errorf("timesync: slew by %v: %w", d.Offset, err)
		}
		lg.Info("guest clock slewing")
	case ActionLeave:
		lg.Info("guest clock left alone")
	default:
		lg.Debug("guest clock in sync")
	}
	return d, nil
}

// decide applies the policy (see the package documentation).
func (s *Syncer) decide(host time.Time, maxLag time.Duration, backward bool, st Settings) Decision {
	d := Decision{Offset: host.Sub(s.Clock.Now())}
	tol := s.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	tol = max(tol, maxLag)
	mag := d.Offset.Abs()
	if mag <= tol {
		d.Action, d.Reason = ActionNone, "within tolerance"
		return d
	}
	threshold := st.StepThreshold
	if threshold <= 0 {
		threshold = DefaultStepThreshold
	}
	if s.Daemon != nil {
		d.Daemon = s.Daemon()
	}
	ahead := d.Offset < 0
	stepWanted := true
	switch {
	case d.Daemon != "" && mag <= threshold:
		stepWanted = false
		d.Reason = "time daemon active and offset below the step threshold"
	case ahead && !backward:
		stepWanted = false
		d.Reason = "guest ahead and backward steps not allowed"
	case d.Daemon != "":
		d.Reason = "offset above the step threshold despite the time daemon"
	default:
		d.Reason = "no time daemon"
	}
	if stepWanted {
		d.Action = ActionStep
		return d
	}
	s.mu.Lock()
	slew := !s.slewSet || s.slew
	s.mu.Unlock()
	if !slew {
		d.Action = ActionLeave
		d.Reason += "; slewing disabled"
		return d
	}
	d.Action = ActionSlew
	return d
}

func (s *Syncer) settings() Settings {
	if s.Settings == nil {
		return Settings{}
	}
	return s.Settings()
}

func (s *Syncer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
