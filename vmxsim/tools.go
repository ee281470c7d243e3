package vmxsim

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/vmxsim/tclo"
)

// Heartbeat statuses, as vSphere names its guestHeartbeatStatus colours
// (State.Tools.Heartbeat).
const (
	HeartbeatGreen  = tclo.HeartbeatGreen
	HeartbeatYellow = tclo.HeartbeatYellow
	HeartbeatRed    = tclo.HeartbeatRed
	HeartbeatGray   = tclo.HeartbeatGray
)

// ErrNoTools is returned by SendTCLO when no tools service is attached.
var ErrNoTools = tclo.ErrNoTools

// ServeTCLO drives one guest TCLO channel (see tclo.Driver.Serve); the
// channel is closed on return.
func (c *Core) ServeTCLO(ctx context.Context, peer TCLOPeer) error {
	c.count("backdoor", func(st *TransportStats) { st.TCLO++ })
	return c.tclo.Serve(ctx, peer)
}

// SendTCLO sends cmd to the tools service and returns its reply.
func (c *Core) SendTCLO(ctx context.Context, cmd string) ([]byte, error) {
	return c.tclo.Send(ctx, cmd)
}

// HasToolsChannel reports whether a tools service is bound right now.
func (c *Core) HasToolsChannel() bool { return c.tclo.Bound() }

// Heartbeat is State().Tools' Running, Heartbeat and Until alone, cheap
// enough for a watcher to look again at Until.
func (c *Core) Heartbeat() (running bool, colour string, until time.Time) {
	return c.tclo.HeartbeatUntil(time.Now())
}

// ClearTools forgets the tools service, as the VMX does at power-off.
func (c *Core) ClearTools() {
	c.mu.Lock()
	c.tools = toolsState{}
	c.caps = nil
	c.mu.Unlock()
	c.tclo.Reset()
	c.changed()
}

// tcloHost is the core as the TCLO driver sees it.
type tcloHost struct{ c *Core }

func (h tcloHost) Admit() error {
	if h.c.PowerState() != PoweredOn {
		return errors.New("vmxsim: the VM is not powered on; tclo channel refused")
	}
	return nil
}

func (h tcloHost) PendingPower() string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	p := h.c.pendingPower
	h.c.pendingPower = ""
	return p
}

// ToolsGone powers the VM off when the guest halted after reporting
// success.
func (h tcloHost) ToolsGone() {
	h.c.mu.Lock()
	halted := h.c.haltPending
	h.c.haltPending = false
	h.c.mu.Unlock()
	if halted {
		h.c.SetPowerState(PoweredOff)
	}
}

func (h tcloHost) Changed() { h.c.changed() }

func (h tcloHost) Remark(format string, args ...any) { h.c.log.Host(format, args...) }

func (h tcloHost) Trace(from string, msg []byte) {
	if from == "host" {
		h.c.tcloCount.commands.Add(1)
	} else {
		h.c.tcloCount.replies.Add(1)
	}
	h.c.trace.Record("tclo", from, "", msg)
}

// tcloCounters count the TCLO messages that crossed.
type tcloCounters struct{ commands, replies atomic.Uint64 }

// TCLOStats are the TCLO messages that crossed since the VMX started,
// pings included: what the host costs a guest.
type TCLOStats struct {
	Commands uint64 `json:"commands"` // sent by the VMX
	Replies  uint64 `json:"replies"`  // answers from the guest
}
