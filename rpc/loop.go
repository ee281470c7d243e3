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
	// signal, which a systemd watchdog can follow.
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
// as open-vm-tools sends it (the VMX's HA monitoring follows it). A PING
// due within half an interval rides along with a reply, so a host that
// pings every second costs the guest one wake-up a second, not two.
func (l *Loop) serveEvents(ctx context.Context, ch EventChannel, resets chan<- struct{}) (active bool, err error) {
	type recv struct {
		msg []byte
		err error
	}
	msgs := make(chan recv)
	readerCtx, stopReader := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			msg, err := ch.Receive(readerCtx)
			select {
			case msgs <- recv{msg, err}:
			case <-readerCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer func() {
		stopReader()
		ch.Close() // unblocks a Receive that ignores readerCtx
		wg.Wait()
	}()

	// The heartbeat: after the first reply a PING goes out at least once
	// per interval, as open-vm-tools sends it (the VMX's HA monitoring
	// follows it). To spare wake-ups, a PING due within the next half
	// interval rides along with a reply instead of waking the loop later.
	iv := l.heartbeat()
	hb := time.NewTimer(iv)
	hb.Stop()
	defer hb.Stop()
	var lastPing time.Time
	ping := func() error {
		if err := ch.Ping(ctx); err != nil {
			return fmt.Errorf("rpc: tclo heartbeat: %w", err)
		}
		lastPing = time.Now()
		hb.Reset(iv)
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return active, ctx.Err()
		case r := <-msgs:
			if r.err != nil {
				return active, fmt.Errorf("rpc: tclo receive: %w", r.err)
			}
			reply, wasReset := l.dispatch(ctx, r.msg)
			if err := ch.Send(ctx, reply); err != nil {
				return active, fmt.Errorf("rpc: tclo send: %w", err)
			}
			if wasReset {
				signalReset(resets)
			}
			l.active()
			if !active || time.Since(lastPing) >= iv/2 {
				if err := ping(); err != nil {
					return active, err
				}
			}
			active = true
		case <-hb.C:
			if err := ping(); err != nil {
				return active, err
			}
			l.active()
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
