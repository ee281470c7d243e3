package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/govmtools/govmtools/rpc/pollwait"
)

// Loop timing, from open-vm-tools (rpcChannelInt.h, rpcin.c).
const (
	// PollUnit is the unit of the backdoor poll delay; the delay doubles
	// 1, 2, 4, 8, 10 units while idle (RPCIN_MAX_DELAY = 10), so an idle
	// channel is polled at least every 100 ms.
	PollUnit = 10 * time.Millisecond
	// MaxPollDelay is RPCIN_MAX_DELAY in PollUnits.
	MaxPollDelay = 10
	// DefaultHeartbeat is RPCIN_HEARTBEAT_INTERVAL: the PING cadence on
	// event channels.
	DefaultHeartbeat = time.Second
	// DefaultRestartDelay is how long the loop waits before reopening a
	// failed channel (RpcChannelRestart waits 1 s); consecutive failures
	// double it up to DefaultMaxRestartDelay.
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 30 * time.Second
)

// Loop is the guest side of a TCLO channel: it opens the channel, receives
// the host's commands, dispatches them to Mux and sends the replies, and
// reopens the channel with back-off when it fails.
//
// Like open-vm-tools' RpcChannel library, the loop itself answers "reset"
// with "OK ATR <App>" and "ping" with "OK "; OnReset then runs the
// post-reset work outside the loop, so replies and polls never wait for it.
type Loop struct {
	// Dial opens the TCLO channel.
	Dial Dialer
	// Mux answers every command other than reset and ping.
	Mux *Mux
	// App is the TCLO application name, "toolbox" for the main service.
	App string
	// OnReset, if set, runs after each reset has been answered. Calls
	// never overlap; resets that arrive while it runs are coalesced into
	// one more call.
	OnReset func(ctx context.Context)
	// OnActive, if set, is called after each successful exchange with the
	// host (a reply, a poll or a heartbeat): it is the loop's liveness
	// signal, which a systemd watchdog can follow. On event channels the
	// heartbeat's calls come from a goroutine of their own.
	OnActive func()
	// Heartbeat is the longest gap between PINGs on event channels; 0
	// means 1 s (RPCIN_HEARTBEAT_INTERVAL).
	Heartbeat time.Duration
	// RestartDelay and MaxRestartDelay bound the reopen back-off; 0 means
	// the defaults.
	RestartDelay, MaxRestartDelay time.Duration
	// Logger receives channel failures; nil discards them.
	Logger *slog.Logger
	// PollSleep, if set, is how a polling channel's loop sleeps between
	// idle polls (rpc/pollwait's Waiter, which spares the Go runtime's
	// other threads a wake-up at every poll); nil uses a Go timer, as
	// code under testing/synctest must.
	PollSleep func(ctx context.Context, d time.Duration) error
	// HeartbeatAlarm, if set, makes the alarm that times an event
	// channel's PINGs, one per channel opened (rpc/pollwait's New, whose
	// timerfd a reply moves without waking anything); nil uses a Go
	// timer, as code under testing/synctest must.
	HeartbeatAlarm func() (Alarm, error)
	// HeartbeatSlack is how much longer than Heartbeat the next PING may
	// wait after one that rode along with a reply. A host that itself
	// pings about once per Heartbeat (the VMX: every second) then carries
	// every PING with its ping's reply, instead of the heartbeat alarm
	// and the host's ping racing each other, each a wake-up, whenever the
	// ping comes a moment late. After a PING of the alarm's own the
	// cadence is Heartbeat again. 0 means none: no gap between PINGs
	// exceeds Heartbeat.
	HeartbeatSlack time.Duration
}

// ReplyPinger is an EventChannel that can send a PING and a reply in one
// write (package sockchan's Conn).
type ReplyPinger interface {
	SendPing(ctx context.Context, msg []byte) error
}

// Run serves until ctx is cancelled, reopening the channel after failures.
// It returns nil on cancellation, after every goroutine it started has
// ended.
func (l *Loop) Run(ctx context.Context) error {
	if l.Dial == nil || l.Mux == nil {
		return errors.New("rpc: loop needs Dial and Mux")
	}
	resets := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-resets:
				if l.OnReset != nil {
					l.OnReset(ctx)
				}
			}
		}
	})
	defer wg.Wait()

	delay := l.restartDelay()
	for {
		ch, err := l.Dial(ctx)
		if err == nil {
			var active bool
			active, err = l.serve(ctx, ch, resets)
			ch.Close()
			if active {
				delay = l.restartDelay()
			}
		} else {
			err = fmt.Errorf("rpc: open tclo channel: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		l.logger().Warn("tclo channel failed; reopening", "err", err, "after", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, l.maxRestartDelay())
	}
}

// serve runs one channel until it fails or ctx ends. active reports whether
// at least one command was answered, which resets the back-off.
func (l *Loop) serve(ctx context.Context, ch Channel, resets chan<- struct{}) (active bool, err error) {
	if ec, ok := ch.(EventChannel); ok {
		return l.serveEvents(ctx, ec, resets)
	}
	return l.servePolling(ctx, ch, resets)
}

// servePolling is RpcInLoop for the backdoor: send the pending reply (empty
// when there is none), receive, and back off while idle.
func (l *Loop) servePolling(ctx context.Context, ch Channel, resets chan<- struct{}) (active bool, err error) {
	pending := []byte{}
	wasReset := false
	delay := 0
	for {
		if err := ch.Send(ctx, pending); err != nil {
			return active, fmt.Errorf("rpc: tclo send: %w", err)
		}
		if wasReset {
			signalReset(resets)
			wasReset = false
		}
		msg, err := ch.Receive(ctx)
		if err != nil {
			return active, fmt.Errorf("rpc: tclo receive: %w", err)
		}
		l.active()
		if len(msg) > 0 {
			pending, wasReset = l.dispatch(ctx, msg)
			active = true
			delay = 0
			continue
		}
		pending = pending[:0]
		if delay == 0 {
			delay = 1
		} else {
			delay = min(2*delay, MaxPollDelay)
		}
		if err := l.pollSleep(ctx, time.Duration(delay)*PollUnit); err != nil {
			if ctx.Err() != nil {
				return active, ctx.Err()
			}
			return active, fmt.Errorf("rpc: tclo poll wait: %w", err)
		}
	}
}

func (l *Loop) pollSleep(ctx context.Context, d time.Duration) error {
	if l.PollSleep != nil {
		return l.PollSleep(ctx, d)
	}
	return pollwait.Timer(ctx, d)
}

// serveEvents is the vsock shape: the host sends first, the guest answers,
// and after the first answer a PING goes out at least once per Heartbeat,
// as open-vm-tools sends it (the VMX's HA monitoring follows it).
//
// One goroutine receives each command, answers it and sends the reply
// itself, with no hand-off to another goroutine. A PING due within half
// an interval rides along with a reply and pushes the heartbeat alarm a
// full interval back, so a host that pings every second costs the guest
// one wake-up a second: the alarm, a timerfd when HeartbeatAlarm gives
// one, only rings when the host falls silent.
func (l *Loop) serveEvents(ctx context.Context, ch EventChannel, resets chan<- struct{}) (active bool, err error) {
	alarm, err := l.newAlarm()
	if err != nil {
		return false, fmt.Errorf("rpc: tclo heartbeat timer: %w", err)
	}
	hb := &heartbeat{ch: ch, alarm: alarm, iv: l.heartbeat(), slack: max(l.HeartbeatSlack, 0)}
	hbCtx, stopHB := context.WithCancel(ctx)
	hbErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hb.run(hbCtx, l.active); err != nil {
			hbErr <- err
			ch.Close() // ends the Receive below
		}
	})
	// A Receive that ignores ctx ends when the channel is closed.
	unblock := context.AfterFunc(ctx, func() { ch.Close() })
	defer func() {
		unblock()
		stopHB()
		wg.Wait()
		alarm.Close()
	}()
	for {
		msg, err := ch.Receive(ctx)
		if err != nil {
			select {
			case herr := <-hbErr:
				return active, herr
			default:
			}
			if ctx.Err() != nil {
				return active, ctx.Err()
			}
			return active, fmt.Errorf("rpc: tclo receive: %w", err)
		}
		reply, wasReset := l.dispatch(ctx, msg)
		if err := hb.reply(ctx, reply, !active); err != nil {
			return active, err
		}
		if wasReset {
			signalReset(resets)
		}
		l.active()
		active = true
	}
}

// Alarm is a timer that one goroutine waits on while others move it: the
// heartbeat's on event channels. rpc/pollwait's Waiter (a timerfd in the
// network poller, moved with raw system calls) and TimerAlarm (a Go
// timer) are Alarms.
type Alarm interface {
	// Set arms the alarm to ring once after d, replacing any earlier
	// setting and any ring not yet waited for.
	Set(d time.Duration) error
	// Wait returns once the alarm has rung, or with ctx's error.
	Wait(ctx context.Context) error
	Close() error
}

func (l *Loop) newAlarm() (Alarm, error) {
	if l.HeartbeatAlarm != nil {
		return l.HeartbeatAlarm()
	}
	return pollwait.NewTimerAlarm(), nil
}

// heartbeat sends an event channel's PINGs: with replies (reply)
// and, when no reply carried one for an interval, on its alarm (run).
type heartbeat struct {
	ch    EventChannel
	alarm Alarm
	iv    time.Duration

	// slack is how much longer than iv the alarm waits after a PING
	// that rode along with a reply (Loop.HeartbeatSlack).
	slack time.Duration

	mu   sync.Mutex    // orders PINGs and alarm settings
	last time.Time     // when the last PING went out
	due  time.Duration // after last, when the alarm's PING is due
}

// reply sends a reply and the PING that rides along with it: always
// with the first reply, then whenever the last PING is half an interval
// old. A channel that is a ReplyPinger sends both in one write (the PING
// first), so that the host's reading them costs the guest nothing more.
func (h *heartbeat) reply(ctx context.Context, msg []byte, first bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !first && time.Since(h.last) < h.iv/2 {
		if err := h.ch.Send(ctx, msg); err != nil {
			return fmt.Errorf("rpc: tclo send: %w", err)
		}
		return nil
	}
	rp, ok := h.ch.(ReplyPinger)
	if !ok {
		if err := h.ch.Send(ctx, msg); err != nil {
			return fmt.Errorf("rpc: tclo send: %w", err)
		}
		return h.ping(ctx, h.iv+h.slack)
	}
	if err := rp.SendPing(ctx, msg); err != nil {
		return fmt.Errorf("rpc: tclo send: %w", err)
	}
	return h.pinged(h.iv + h.slack)
}

// ping sends a PING and sets the alarm next ahead. h.mu is held.
func (h *heartbeat) ping(ctx context.Context, next time.Duration) error {
	if err := h.ch.Ping(ctx); err != nil {
		return fmt.Errorf("rpc: tclo heartbeat: %w", err)
	}
	return h.pinged(next)
}

// pinged records a PING sent and sets the alarm next ahead.
func (h *heartbeat) pinged(next time.Duration) error {
	h.last, h.due = time.Now(), next
	if err := h.alarm.Set(next); err != nil {
		return fmt.Errorf("rpc: tclo heartbeat timer: %w", err)
	}
	return nil
}

// run sends a PING each time the alarm rings an interval after the last
// one, until ctx ends. The alarm is first set by the first reply's PING.
// A ring that a reply's PING overtook (the alarm was moved as it rang)
// sets the alarm for the rest of the interval instead.
func (h *heartbeat) run(ctx context.Context, onPing func()) error {
	for {
		if err := h.alarm.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rpc: tclo heartbeat timer: %w", err)
		}
		h.mu.Lock()
		var err error
		pinged := false
		if left := h.due - time.Since(h.last); left > 0 {
			if err = h.alarm.Set(left); err != nil {
				err = fmt.Errorf("rpc: tclo heartbeat timer: %w", err)
			}
		} else {
			err = h.ping(ctx, h.iv)
			pinged = err == nil
		}
		h.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if pinged {
			onPing()
		}
	}
}

// dispatch answers reset and ping itself and everything else through Mux.
// isReset tells the caller to run OnReset once the reply has been sent.
func (l *Loop) dispatch(ctx context.Context, msg []byte) (reply []byte, isReset bool) {
	name, _ := SplitCommand(msg)
	switch name {
	case "reset":
		return []byte(OKPrefix + "ATR " + l.App), true
	case "ping":
		return []byte(OKPrefix), false
	}
	return l.Mux.Dispatch(ctx, msg), false
}

// signalReset queues one OnReset call; a reset already queued absorbs it.
func signalReset(resets chan<- struct{}) {
	select {
	case resets <- struct{}{}:
	default:
	}
}

func (l *Loop) active() {
	if l.OnActive != nil {
		l.OnActive()
	}
}

func (l *Loop) heartbeat() time.Duration {
	if l.Heartbeat > 0 {
		return l.Heartbeat
	}
	return DefaultHeartbeat
}

func (l *Loop) restartDelay() time.Duration {
	if l.RestartDelay > 0 {
		return l.RestartDelay
	}
	return DefaultRestartDelay
}

func (l *Loop) maxRestartDelay() time.Duration {
	if l.MaxRestartDelay > 0 {
		return l.MaxRestartDelay
	}
	return DefaultMaxRestartDelay
}

func (l *Loop) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}
