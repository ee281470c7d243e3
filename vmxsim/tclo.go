package vmxsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TCLOPeer is one guest TCLO channel as the VMX sees it: a vsock or unix
// stream, or a backdoor message channel served by the trap.
type TCLOPeer interface {
	// Exchange delivers one command to the guest and returns its reply.
	Exchange(ctx context.Context, cmd []byte) ([]byte, error)
	// Done is closed when the guest's channel has gone away.
	Done() <-chan struct{}
	// Close closes the channel.
	Close() error
}

// Heartbeat statuses, as vSphere names its guestHeartbeatStatus colours.
const (
	HeartbeatGreen  = "green"
	HeartbeatYellow = "yellow"
	HeartbeatRed    = "red"
	HeartbeatGray   = "gray"
)

// ErrNoTools is returned by SendTCLO when no tools service is attached.
var ErrNoTools = errors.New("vmxsim: tools are not running (no TCLO channel bound to toolbox)")

// tcloState tracks the TCLO sessions. Guarded by Core.mu.
type tcloState struct {
	current        *session // the session bound to app "toolbox"
	everRan        bool
	lastAnswer     time.Time // last answer on the current toolbox session
	disconnectedAt time.Time
	sessions       int
}

type session struct {
	peer TCLOPeer
	cmds chan tcloRequest
	app  string
	done chan struct{}
}

type tcloRequest struct {
	cmd   []byte
	reply chan tcloResult
}

type tcloResult struct {
	reply []byte
	err   error
}

// ServeTCLO drives one guest TCLO channel as the VMX does: reset, then
// ping, the Set_Option batch and Capabilities_Register, then a ping every
// interval, with commands from SendTCLO in between. It returns when the
// channel fails, the guest stops answering within the exchange timeout, or
// ctx ends; the channel is closed on return.
func (c *Core) ServeTCLO(ctx context.Context, peer TCLOPeer) error {
	s := &session{peer: peer, cmds: make(chan tcloRequest), done: make(chan struct{})}
	defer func() {
		close(s.done)
		peer.Close()
		c.unbind(s)
	}()
	c.mu.Lock()
	c.tclo.sessions++
	off := c.power != "" && c.power != PoweredOn
	c.mu.Unlock()
	if off {
		return errors.New("vmxsim: the VM is not powered on; tclo channel refused")
	}

	reply, err := c.exchange(ctx, s, "reset")
	if err != nil {
		return err
	}
	app, ok := strings.CutPrefix(string(bytes.TrimSuffix(reply, []byte{0})), "OK ATR ")
	if !ok || app == "" {
		c.log.Host("TCLO: guest answered reset with %q; closing the channel", printable(string(reply)))
		return fmt.Errorf("vmxsim: bad reset reply %q", reply)
	}
	c.bind(s, app)

	startup := append([]string{"ping"}, prefixAll("Set_Option ", c.opts.SetOptions)...)
	startup = append(startup, "Capabilities_Register")
	c.mu.Lock()
	if c.pendingPower != "" {
		startup = append(startup, c.pendingPower)
		c.pendingPower = ""
	}
	c.mu.Unlock()
	for _, cmd := range startup {
		if _, err := c.exchange(ctx, s, cmd); err != nil {
			return err
		}
	}

	tick := time.NewTicker(c.opts.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-peer.Done():
			return errors.New("vmxsim: guest closed the tclo channel")
		case req := <-s.cmds:
			r, err := c.exchange(ctx, s, string(req.cmd))
			req.reply <- tcloResult{r, err}
			if err != nil {
				return err
			}
		case <-tick.C:
			if _, err := c.exchange(ctx, s, "ping"); err != nil {
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
func (c *Core) exchange(ctx context.Context, s *session, cmd string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ExchangeTimeout)
	defer cancel()
	c.trace.Record("tclo", "host", "", []byte(cmd))
	reply, err := s.peer.Exchange(ctx, []byte(cmd))
	if err == nil {
		c.trace.Record("tclo", "guest", "", reply)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			c.log.Host("TCLO: no answer to %q within %v; resetting the channel", firstWord(cmd), c.opts.ExchangeTimeout)
		}
		return nil, fmt.Errorf("vmxsim: tclo %s: %w", firstWord(cmd), err)
	}
	c.mu.Lock()
	if c.tclo.current == s {
		c.tclo.lastAnswer = time.Now()
	}
	c.mu.Unlock()
	return reply, nil
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// bind makes s the session of app; a toolbox session becomes the tools
// service the VM reports, replacing any older one.
// The replaced session's channel is closed after c.mu is released: a
// peer's Close may take the locks of its transport (the backdoor's), which
// are taken before c.mu on the guest's call path.
func (c *Core) bind(s *session, app string) {
	var old *session
	defer func() {
		if old != nil {
			old.peer.Close()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	s.app = app
	if app != "toolbox" {
		return
	}
	if c.tclo.current != nil && c.tclo.current != s {
		old = c.tclo.current
	}
	c.tclo.current = s
	c.tclo.everRan = true
	c.tclo.lastAnswer = time.Now()
	c.log.Host("TOOLS: tools service bound to TCLO channel (app %s)", app)
}

func (c *Core) unbind(s *session) {
	c.mu.Lock()
	halted := false
	if c.tclo.current == s {
		c.tclo.current = nil
		c.tclo.disconnectedAt = time.Now()
		c.log.Host("TOOLS: TCLO channel of app %s closed", s.app)
		halted = c.haltPending
		c.haltPending = false
	}
	c.mu.Unlock()
	if halted {
		// The guest halted after reporting success: the VM is off.
		c.SetPowerState(PoweredOff)
	}
}

// SendTCLO sends cmd to the tools service and returns its reply.
func (c *Core) SendTCLO(ctx context.Context, cmd string) ([]byte, error) {
	c.mu.Lock()
	s := c.tclo.current
	c.mu.Unlock()
	if s == nil {
		return nil, ErrNoTools
	}
	req := tcloRequest{cmd: []byte(cmd), reply: make(chan tcloResult, 1)}
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

// heartbeat derives tools running status and heartbeat colour at now.
// Preconditions: c.mu is held.
func (c *Core) heartbeat(now time.Time) (running bool, status string) {
	t := &c.tclo
	if !t.everRan {
		return false, HeartbeatGray
	}
	if t.current == nil && now.Sub(t.disconnectedAt) > c.opts.ToolsTimeout {
		return false, HeartbeatGray
	}
	iv := c.opts.PingInterval
	switch elapsed := now.Sub(t.lastAnswer); {
	case elapsed <= 2*iv:
		return true, HeartbeatGreen
	case elapsed <= 4*iv:
		return true, HeartbeatYellow
	default:
		return true, HeartbeatRed
	}
}

// ClearTools forgets the tools service, as the VMX does at power-off.
func (c *Core) ClearTools() {
	c.mu.Lock()
	cur := c.tclo.current
	c.tclo = tcloState{}
	c.tools = toolsState{}
	c.caps = nil
	c.mu.Unlock()
	if cur != nil {
		cur.peer.Close()
	}
}
