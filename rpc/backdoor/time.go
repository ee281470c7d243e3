package backdoor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Time commands (backdoor_def.h; docs/architecture.md section 3).
const (
	CmdGetTime            = 23 // EAX = seconds (0xFFFFFFFF: error), EBX = µs, ECX = max lag (µs)
	CmdStopCatchup        = 24 // after a step: stop replaying lost timer ticks
	CmdGetTimeFull        = 46 // ESI:EDX = seconds, EBX = µs, ECX = max lag; EAX stays the magic
	CmdGetTimeFullWithLag = 55 // GETTIMEFULL plus EDI = interrupt lag (µs)
)

// ErrNoHostTime is returned when the VMX answers none of the time
// commands.
var ErrNoHostTime = errors.New("backdoor: the VMX answers no time command")

// HostTime is one reading of the host clock.
type HostTime struct {
	Time time.Time
	// MaxLag is how far the guest may lag behind the host before the host
	// considers it out of sync (ECX of the time commands).
	MaxLag time.Duration
	// InterruptLag is the virtual timer interrupts the VMX still owes the
	// guest (EDI of GETTIMEFULL_WITH_LAG; zero from the older commands).
	InterruptLag time.Duration
	// Command is the backdoor command that answered.
	Command uint16
}

// ReadHostTime reads the host clock once: GETTIMEFULL_WITH_LAG, falling
// back to GETTIMEFULL and then GETTIME on VMXs that lack the newer
// commands, as vmtoolsd's timeSync does. The full commands are recognised
// as supported when EAX still holds the magic after the call. Only call it
// with Native after Detect has succeeded.
func ReadHostTime(h Hypercall) (HostTime, error) {
	t, _, err := readHostTime(h, 0)
	return t, err
}

// timeCommands are the time commands, newest first.
var timeCommands = [...]uint16{CmdGetTimeFullWithLag, CmdGetTimeFull, CmdGetTime}

// readHostTime tries timeCommands from index first on; it returns the
// index of the command that answered.
func readHostTime(h Hypercall, first int) (HostTime, int, error) {
	for i := first; i < len(timeCommands); i++ {
		t, ok, err := readTime(h, timeCommands[i])
		if ok {
			return t, i, err
		}
	}
	return HostTime{}, first, ErrNoHostTime
}

// readTime makes one time call; ok reports whether cmd is supported (err
// then tells whether its answer made sense).
func readTime(h Hypercall, cmd uint16) (t HostTime, ok bool, err error) {
	r := Regs{BX: ^uint64(Magic) & 0xFFFFFFFF, CX: uint64(cmd)}
	h.LB(&r)
	var sec int64
	switch cmd {
	case CmdGetTime:
		if uint32(r.AX) == 0xFFFFFFFF {
			return t, false, nil
		}
		sec = int64(uint32(r.AX))
	default:
		if uint32(r.AX) != Magic {
			return t, false, nil
		}
		sec = int64(uint64(uint32(r.SI))<<32 | uint64(uint32(r.DX)))
	}
	usec := uint32(r.BX)
	if usec >= 1e6 || sec < 0 {
		return t, true, fmt.Errorf("%w: command %d answered %d s %d µs", ErrProtocol, cmd, sec, usec)
	}
	t = HostTime{
		Time:    time.Unix(sec, int64(usec)*1000),
		MaxLag:  time.Duration(uint32(r.CX)) * time.Microsecond,
		Command: cmd,
	}
	if cmd == CmdGetTimeFullWithLag {
		t.InterruptLag = time.Duration(uint32(r.DI)) * time.Microsecond
	}
	return t, true, nil
}

// StopCatchup tells the VMX to stop delivering the timer interrupts the
// guest has missed; timeSync does it after stepping the clock, which
// already accounts for them.
func StopCatchup(h Hypercall) {
	r := Regs{CX: CmdStopCatchup}
	h.LB(&r)
}

// Sampling of HostClock: a reading is kept when the backdoor call took
// under sampleGood; otherwise up to maxSamples are taken and the fastest
// kept (the guest may be descheduled in the middle of a call), as
// vmtoolsd's timeSync does around its guest clock read.
const (
	maxSamples = 4
	sampleGood = 2 * time.Millisecond
)

// HostClock is the host's clock over the backdoor, for time
// synchronization: it implements vmtoolsd/timesync's HostClock and
// CatchupStopper.
//
// Ready, if set, must succeed before each use: the transport passes its
// cached VMware detection, so that nothing here runs a backdoor
// instruction on a machine that is not a VMware VM.
type HostClock struct {
	H     Hypercall
	Ready func() error

	mu    sync.Mutex // one reading at a time
	first int        // index in timeCommands of the newest command the VMX answers
}

// HostTime returns the host's time now and the host's max lag. The time
// is the reading taken by the fastest of up to four backdoor calls,
// projected to the moment HostTime returns with the monotonic clock, so
// that a guest clock read right after it compares like with like.
func (c *HostClock) HostTime(ctx context.Context) (time.Time, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, 0, err
	}
	if c.Ready != nil {
		if err := c.Ready(); err != nil {
			return time.Time{}, 0, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var best HostTime
	var bestMid time.Time
	bestSpread := time.Duration(-1)
	for range maxSamples {
		before := time.Now()
		t, i, err := readHostTime(c.H, c.first)
		after := time.Now()
		if err != nil {
			return time.Time{}, 0, err
		}
		c.first = i // older VMXs are not asked the newer commands again
		if spread := after.Sub(before); bestSpread < 0 || spread < bestSpread {
			best, bestSpread = t, spread
			bestMid = before.Add(spread / 2)
		}
		if bestSpread < sampleGood {
			break
		}
	}
	return best.Time.Add(time.Since(bestMid)), best.MaxLag, nil
}

// StopCatchup sends STOPCATCHUP.
func (c *HostClock) StopCatchup(ctx context.Context) error {
	if c.Ready != nil {
		if err := c.Ready(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	StopCatchup(c.H)
	return nil
}
