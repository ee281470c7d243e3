// Package tclo is the simulated VMX's TCLO driver: the host end of the
// channel on which the VMX sends the tools service its commands. Driver
// runs one session per guest channel as the VMX does (reset, ping, the
// Set_Option batch, Capabilities_Register, then a ping every interval
// with queued commands in between), binds the "toolbox" session as the
// VM's tools service and derives the heartbeat colour from the answers.
// StreamPeer carries a session over a DataMap stream (vsock, or vmxsim's
// tclo.sock); the backdoor package carries it over message channels.
//
// The driver keeps its own state under its own lock and reaches the VMX
// core only through Host, never while holding that lock.
package tclo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// Heartbeat statuses, as vSphere names its guestHeartbeatStatus colours.
const (
	HeartbeatGreen  = "green"
	HeartbeatYellow = "yellow"
	HeartbeatRed    = "red"
	HeartbeatGray   = "gray"
)

// ErrNoTools is returned by Send when no tools service is attached.
var ErrNoTools = errors.New("vmxsim: tools are not running (no TCLO channel bound to toolbox)")

// DefaultSetOptions returns the Set_Option batch the simulator sends after
// each reset: the options a vSphere host sends for a VM with default
// tools settings. Startup time sync is off so that no guest under test
// ever tries to step the clock of a development machine.
func DefaultSetOptions() []string {
	return []string{
		"broadcastIP 1",
		"synctime 0",
		"synctime.period 0",
		"time.synchronize.tools.startup 0",
		"time.synchronize.tools.enable 0",
		"time.synchronize.continue 1",
		"time.synchronize.restore 1",
		"time.synchronize.resume.disk 1",
		"time.synchronize.shrink 1",
		"toolScripts.afterPowerOn 1",
		"toolScripts.afterResume 1",
		"toolScripts.beforeSuspend 1",
		"toolScripts.beforePowerOff 1",
		"enableMessageBusTunnel 0",
	}
}

// Host is what the driver needs of the VMX core. The driver calls it
// without holding its own lock.
type Host interface {
	// Admit is asked before a channel is served; an error refuses the
	// channel (the VM is not powered on).
	Admit() error
	// PendingPower returns, and forgets, the power command the tools must
	// hear once they are back (OS_PowerOn, OS_Resume), or "".
	PendingPower() string
	// ToolsGone is called after the channel of the tools service closed.
	ToolsGone()
	// Changed is called after the tools' running status or heartbeat
	// changed other than by time passing (see HeartbeatUntil): a tools
	// service bound or gone, an answer after a missed ping.
	Changed()
	// Remark writes a remark of the VMX itself to vmware.log.
	Remark(format string, args ...any)
	// Trace records one TCLO message as it crossed (from "host" or
	// "guest").
	Trace(from string, msg []byte)
}

// Options configure a Driver.
type Options struct {
	// PingInterval is the ping cadence; 0 means 1 s.
	PingInterval time.Duration
	// ToolsTimeout is how long after the tools' channel goes away they
	// still count as running; 0 means 10 ping intervals.
	ToolsTimeout time.Duration
	// ExchangeTimeout bounds the wait for the answer to one command; 0
	// means 10 s.
	ExchangeTimeout time.Duration
	// SetOptions is the Set_Option batch sent after each reset, as
	// "name value" strings; nil means DefaultSetOptions().
	SetOptions []string
}

// Driver drives the guest's TCLO channels. It is safe for concurrent use.
type Driver struct {
	host Host
	opts Options

	mu             sync.Mutex
	current        *session // the session bound to app "toolbox"
	everRan        bool
	lastAnswer     time.Time // last answer on the current toolbox session
	disconnectedAt time.Time
}

type session struct {
	peer vmx.TCLOPeer
	cmds chan request
	app  string
	done chan struct{}
}

type request struct {
	cmd   []byte
	reply chan result
}

type result struct {
	reply []byte
	err   error
}

// New returns a driver for host.
func New(host Host, opts Options) *Driver {
	if opts.PingInterval <= 0 {
		opts.PingInterval = time.Second
	}
	if opts.ToolsTimeout <= 0 {
		opts.ToolsTimeout = 10 * opts.PingInterval
	}
	if opts.ExchangeTimeout <= 0 {
		opts.ExchangeTimeout = 10 * time.Second
	}
	if opts.SetOptions == nil {
		opts.SetOptions = DefaultSetOptions()
	}
	return &Driver{host: host, opts: opts}
}

// Serve drives one guest TCLO channel as the VMX does: reset, then ping,
// the Set_Option batch and Capabilities_Register, then a ping every
// interval, with commands from Send in between. It returns when the
// channel fails, the guest stops answering within the exchange timeout,
// or ctx ends; the channel is closed on return.
func (d *Driver) Serve(ctx context.Context, peer vmx.TCLOPeer) error {
	s := &session{peer: peer, cmds: make(chan request), done: make(chan struct{})}
	defer func() {
		close(s.done)
		peer.Close()
		d.unbind(s)
	}()
	if err := d.host.Admit(); err != nil {
		return err
	}
	reply, err := d.exchange(ctx, s, "reset")
	if err != nil {
		return err
	}
	app, ok := strings.CutPrefix(string(bytes.TrimSuffix(reply, []byte{0})), "OK ATR ")
	if !ok || app == "" {
		d.host.Remark("TCLO: guest answered reset with %q; closing the channel", vmx.Printable(string(reply)))
		return fmt.Errorf("vmxsim: bad reset reply %q", reply)
	}
	d.bind(s, app)

	startup := append([]string{"ping"}, prefixAll("Set_Option ", d.opts.SetOptions)...)
	startup = append(startup, "Capabilities_Register")
	if p := d.host.PendingPower(); p != "" {
		startup = append(startup, p)
	}
	for _, cmd := range startup {
		if _, err := d.exchange(ctx, s, cmd); err != nil {
			return err
		}
	}
	return d.loop(ctx, s)
}

// loop pings at the interval and sends queued commands until the session
// ends.
func (d *Driver) loop(ctx context.Context, s *session) error {
	tick := time.NewTicker(d.opts.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.peer.Done():
			return errors.New("vmxsim: guest closed the tclo channel")
		case req := <-s.cmds:
			r, err := d.exchange(ctx, s, string(req.cmd))
			req.reply <- result{r, err}
			if err != nil {
				return err
			}
		case <-tick.C:
			if _, err := d.exchange(ctx, s, "ping"); err != nil {
				return err
			}
		}
	}
}

func prefixAll(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

// exchange sends one command and waits, bounded by the exchange timeout.
// Any answer ("OK " or "ERROR ") proves the guest alive.
func (d *Driver) exchange(ctx context.Context, s *session, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.ExchangeTimeout)
	defer cancel()
	d.host.Trace("host", []byte(cmd))
	reply, err := s.peer.Exchange(ctx, []byte(cmd))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			d.host.Remark("TCLO: no answer to %q within %v; resetting the channel", firstWord(cmd), d.opts.ExchangeTimeout)
		}
		return nil, fmt.Errorf("vmxsim: tclo %s: %w", firstWord(cmd), err)
	}
	d.host.Trace("guest", reply)
	now := time.Now()
	d.mu.Lock()
	late := false
	if d.current == s {
		// Past the green window the colour was yellow or red: this
		// answer turns it green again.
		late = now.Sub(d.lastAnswer) > 2*d.opts.PingInterval
		d.lastAnswer = now
	}
	d.mu.Unlock()
	if late {
		d.host.Changed()
	}
	return reply, nil
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// bind makes s the session of app; a toolbox session becomes the tools
// service the VM reports, replacing any older one. The replaced session's
// channel is closed after d.mu is released: a peer's Close may take the
// locks of its transport (the backdoor's).
func (d *Driver) bind(s *session, app string) {
	d.mu.Lock()
	s.app = app
	if app != "toolbox" {
		d.mu.Unlock()
		return
	}
	old := d.current
	d.current = s
	d.everRan = true
	d.lastAnswer = time.Now()
	d.mu.Unlock()
	d.host.Remark("TOOLS: tools service bound to TCLO channel (app %s)", app)
	d.host.Changed()
	if old != nil && old != s {
		old.peer.Close()
	}
}

func (d *Driver) unbind(s *session) {
	d.mu.Lock()
	bound := d.current == s
	if bound {
		d.current = nil
		d.disconnectedAt = time.Now()
	}
	d.mu.Unlock()
	if bound {
		d.host.Remark("TOOLS: TCLO channel of app %s closed", s.app)
		d.host.Changed()
		d.host.ToolsGone()
	}
}

// Send sends cmd to the tools service and returns its reply.
func (d *Driver) Send(ctx context.Context, cmd string) ([]byte, error) {
	d.mu.Lock()
	s := d.current
	d.mu.Unlock()
	if s == nil {
		return nil, ErrNoTools
	}
	req := request{cmd: []byte(cmd), reply: make(chan result, 1)}
	select {
	case s.cmds <- req:
	case <-s.done:
		return nil, ErrNoTools
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.reply, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Bound reports whether a tools service is bound right now.
func (d *Driver) Bound() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current != nil
}

// Heartbeat derives the tools' running status and heartbeat colour at
// now: green while pings are answered, yellow after one missed interval,
// red after several, gray once the tools have been gone ToolsTimeout (or
// never ran).
func (d *Driver) Heartbeat(now time.Time) (running bool, status string) {
	running, status, _ = d.HeartbeatUntil(now)
	return running, status
}

// HeartbeatUntil is Heartbeat with the time until which its answer holds
// if nothing else happens (no answer, no channel bound or closed): the
// next colour change by time alone, or zero if there is none (gray, or
// red with the channel bound). Answers that keep the colour green move
// that time on without telling Host; anything else calls Host.Changed, so
// a watcher needs to look again only at the time returned.
func (d *Driver) HeartbeatUntil(now time.Time) (running bool, status string, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.everRan {
		return false, HeartbeatGray, time.Time{}
	}
	var gone time.Time
	if d.current == nil {
		gone = d.disconnectedAt.Add(d.opts.ToolsTimeout)
		if now.After(gone) {
			return false, HeartbeatGray, time.Time{}
		}
	}
	iv := d.opts.PingInterval
	yellow, red := d.lastAnswer.Add(2*iv), d.lastAnswer.Add(4*iv)
	switch {
	case !now.After(yellow):
		status, until = HeartbeatGreen, yellow
	case !now.After(red):
		status, until = HeartbeatYellow, red
	default:
		status = HeartbeatRed
	}
	if !gone.IsZero() && (until.IsZero() || gone.Before(until)) {
		until = gone
	}
	if !until.IsZero() {
		until = until.Add(time.Nanosecond) // the colour changes once past the bound
	}
	return true, status, until
}

// Reset forgets the tools service, as the VMX does at power-off, and
// closes its channel.
func (d *Driver) Reset() {
	d.mu.Lock()
	cur := d.current
	d.current, d.everRan = nil, false
	d.lastAnswer, d.disconnectedAt = time.Time{}, time.Time{}
	d.mu.Unlock()
	if cur != nil {
		cur.peer.Close()
	}
}
