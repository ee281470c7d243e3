package timesync

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SystemClock is the real guest clock: Step calls clock_settime and Slew
// adjtimex(ADJ_OFFSET_SINGLESHOT), the adjtime(3) slew. Only
// vmtoolsd/daemon builds it, and never under vmxsim.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }

// Step moves the clock by d.
func (SystemClock) Step(d time.Duration) error {
	ts := unix.NsecToTimespec(time.Now().Add(d).UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime: %w", err)
	}
	return nil
}

// maxSlew bounds one adjtime slew (the kernel slews at 0.5 ms/s, so 30 s
// takes over 16 hours; larger offsets are stepped by the policy).
const maxSlew = 30 * time.Second

// Slew makes the kernel slew the clock by d.
func (SystemClock) Slew(d time.Duration) error {
	d = min(max(d, -maxSlew), maxSlew)
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("adjtimex: %w", err)
	}
	return nil
}

// LogClock is the clock of simulated runs: it reads the real time and only
// logs what it would step or slew.
type LogClock struct {
	Logger *slog.Logger
}

// Now returns the current time.
func (LogClock) Now() time.Time { return time.Now() }

// Step logs d.
func (c LogClock) Step(d time.Duration) error {
	if c.Logger != nil {
		c.Logger.Warn("clock step recorded, not performed (simulated)", "by", d)
	}
	return nil
}

// Slew logs d.
func (c LogClock) Slew(d time.Duration) error {
	if c.Logger != nil {
		c.Logger.Info("clock slew recorded, not performed (simulated)", "by", d)
	}
	return nil
}

// timeDaemons are the process names (as in /proc/PID/comm, at most 15
// bytes) of the time daemons the policy defers to.
var timeDaemons = map[string]string{
	"chronyd":         "chronyd",
	"ntpd":            "ntpd",
	"systemd-timesyn": "systemd-timesyncd",
	"openntpd":        "openntpd",
	"ntpsec":          "ntpsec",
}

// ProcDaemon returns a Daemon function that scans procRoot (normally
// /proc) for a running time daemon. The scan is made only when a sync
// decision needs it, never periodically.
func ProcDaemon(procRoot string) func() string {
	return func() string {
		entries, err := os.ReadDir(procRoot)
		if err != nil {
			return ""
		}
		for _, e := range entries {
			name := e.Name()
			if name[0] < '0' || name[0] > '9' {
				continue
			}
			b, err := os.ReadFile(filepath.Join(procRoot, name, "comm"))
			if err != nil {
				continue
			}
			if d, ok := timeDaemons[strings.TrimSpace(string(b))]; ok {
				return d
			}
		}
		return ""
	}
}
