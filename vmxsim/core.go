package vmxsim

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/vmxsim/hgfsd"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
	"github.com/govmtools/govmtools/vmxsim/tclo"
	"github.com/govmtools/govmtools/vmxsim/vmhost"
	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// Options configure a Core.
type Options struct {
	// LogPath is where vmware.log is written; "" discards it.
	LogPath string
	// PingInterval is the TCLO ping cadence; 0 means 1 s.
	PingInterval time.Duration
	// ToolsTimeout is how long after the guest's TCLO channel goes away
	// tools still count as running (the heartbeat goes yellow and red
	// meanwhile); after it they are not running and the heartbeat is
	// gray. 0 means 10 ping intervals.
	ToolsTimeout time.Duration
	// ExchangeTimeout bounds the wait for the guest's answer to one TCLO
	// command; after it the channel is closed, as the VMX resets a stuck
	// channel. 0 means 10 s.
	ExchangeTimeout time.Duration
	// SetOptions is the Set_Option batch sent after each reset, as
	// "name value" strings; nil means tclo.DefaultSetOptions().
	SetOptions []string
	// Logger receives the simulator's own diagnostics; nil discards them.
	Logger *slog.Logger
	// Trace, if set, receives every RPCI and TCLO message as it crossed,
	// one JSON object a line (see Tracer).
	Trace io.Writer
	// Shares are the shared folders the HGFS server starts with.
	Shares []hgfsd.ShareSpec
	// HGFSMaxPacket is the HGFS packet size the host offers in session
	// negotiation; 0 means 522240 (HGFS_LARGE_PACKET_MAX).
	HGFSMaxPacket uint32
	// NoRPCIVSock makes the VMX reset RPCI connections over vsock, as
	// with guest_rpc.rpci.usevsocket = "FALSE": guests fall back to the
	// backdoor. TCLO over vsock is unaffected.
	NoRPCIVSock bool
	// SecureRPC are RPCI commands only a privileged caller (a vsock
	// connection from a port below 1024, or a root peer of rpci.sock)
	// may send, as with guest_rpc.rpci.auth.cmd.NAME = "TRUE"; anyone
	// else, the backdoor included, gets "0 Permission denied".
	SecureRPC []string
	// Host is what the VM's host reports to toolbox commands (CPU speed,
	// devices, guestlib statistics, the disk wiper).
	Host vmhost.Options
}

// Caller describes who sent an RPCI, as the VMX sees it.
type Caller = vmx.Caller

// TCLOPeer is one guest TCLO channel as the VMX sees it.
type TCLOPeer = vmx.TCLOPeer

// RPCIHandler answers one RPCI command. args are the bytes after the
// command name and one separator, exactly as received (text commands may
// end in a NUL). The returned reply starts with "1 " or "0 ".
type RPCIHandler func(ctx context.Context, caller Caller, args []byte) []byte

// Core is the simulated VMX's model of one VM.
type Core struct {
	opts Options
	log  *VMXLog
	lg   *slog.Logger

	handlersMu sync.RWMutex
	handlers   map[string]RPCIHandler

	// mu guards the VM state below; it is never held while talking to a
	// guest.
	mu           sync.Mutex
	guestinfo    map[string]string
	caps         []string
	tools        toolsState
	guestInfoRaw map[int][]byte // SetGuestInfo payloads by type, raw
	diskInfoRaw  []byte         // SetGuestDiskInfo payload, raw
	nicUpdates   int            // NIC info (SetGuestInfo V3 or V2) messages accepted
	lastState    *StateChange
	stateChanges int    // tools.os.statechange.status reports received
	power        string // "" means PoweredOn
	haltPending  bool   // the guest reported a successful halt
	pendingPower string // OS_PowerOn / OS_Resume to send once tools connect

	tclo      *tclo.Driver
	tcloCount tcloCounters // TCLO messages by direction (tools.go)

	backdoor func() vmx.BackdoorStats // set by ReportBackdoor, for State
	trap     func() vmx.TrapStats     // set by ReportTrap, for State
	trace    *Tracer
	hgfs     *hgfsd.Server
	quiesce  *quiesce.Driver // quiesced snapshots (vmbackup)
	faults   faults          // fault injection (fault.go)

	watchMu  sync.Mutex               // serialises OnChange
	watchers atomic.Pointer[[]func()] // OnChange's functions

	secure     map[string]bool            // Options.SecureRPC
	transports map[string]*TransportStats // by Caller.Transport; guarded by mu
	host       *vmhost.Host
}

// toolsState is what the VMX knows about the tools service.
type toolsState struct {
	version     string // tools.set.version value
	versionType string // "<version> <type>" from tools.set.versiontype
	app         string // bound by "ATR <app>"
}

// StateChange is the last tools.os.statechange.status report.
type StateChange struct {
	State   int  `json:"state"`
	Success bool `json:"success"`
}

// New returns a core. It opens vmware.log at opts.LogPath.
func New(opts Options) (*Core, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := OpenVMXLog(opts.LogPath)
	if err != nil {
		return nil, err
	}
	c := &Core{
		opts:         opts,
		log:          l,
		lg:           opts.Logger,
		handlers:     map[string]RPCIHandler{},
		guestinfo:    map[string]string{},
		guestInfoRaw: map[int][]byte{},
		secure:       map[string]bool{},
		transports:   map[string]*TransportStats{},
	}
	for _, name := range opts.SecureRPC {
		c.secure[name] = true
	}
	if opts.Trace != nil {
		c.trace = NewTracer(opts.Trace)
	}
	c.tclo = tclo.New(tcloHost{c}, tclo.Options{
		PingInterval:    opts.PingInterval,
		ToolsTimeout:    opts.ToolsTimeout,
		ExchangeTimeout: opts.ExchangeTimeout,
		SetOptions:      opts.SetOptions,
	})
	registerCoreRPCI(c)
	c.hgfs = hgfsd.New(hgfsd.Options{Shares: opts.Shares, MaxPacket: opts.HGFSMaxPacket, Logger: opts.Logger})
	c.HandleRPCI("f", func(_ context.Context, _ Caller, args []byte) []byte { return c.hgfs.RPCI(args) })
	c.quiesce = quiesce.New(quiesce.Host{Send: c.tclo.Send, NoTools: tclo.ErrNoTools, Remark: c.log.Host, Logger: opts.Logger})
	c.HandleRPCI("vmbackup.eventSet", func(_ context.Context, _ Caller, args []byte) []byte { return c.quiesce.EventSet(args) })
	c.host = vmhost.New(opts.Host)
	for name, h := range c.host.RPCIHandlers() {
		c.HandleRPCI(name, func(ctx context.Context, _ Caller, args []byte) []byte { return h(ctx, args) })
	}
	return c, nil
}

// HostCall serves the backdoor commands of the VM's host (vmhost).
func (c *Core) HostCall(cmd uint16, bx uint32) (ax, bxOut uint32, ok bool) {
	return c.host.HostCall(cmd, bx)
}

// Host returns the VM's host.
func (c *Core) Host() *vmhost.Host { return c.host }

// Close closes vmware.log.
func (c *Core) Close() error { return c.log.Close() }

// HGFS returns the core's shared-folders server.
func (c *Core) HGFS() *hgfsd.Server { return c.hgfs }

// Quiesce returns the core's snapshot driver (the host half of vmbackup).
func (c *Core) Quiesce() *quiesce.Driver { return c.quiesce }

// Log returns the core's vmware.log.
func (c *Core) Log() *VMXLog { return c.log }

// HandleRPCI registers h for the RPCI command name, replacing any earlier
// handler. Feature files register their commands this way.
func (c *Core) HandleRPCI(name string, h RPCIHandler) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	c.handlers[name] = h
}

// Reply texts the VMX uses.
const (
	ReplyUnknownCommand = "0 Unknown command"
	ReplyNoValue        = "0 No value found"
	// ReplyPermissionDenied answers an RPCI the caller may not send.
	ReplyPermissionDenied = "0 Permission denied"
)

// RPCI answers one RPCI request. It never panics on bad input: unknown or
// garbage requests get "0 Unknown command", messages over 64 KiB are
// refused.
func (c *Core) RPCI(ctx context.Context, caller Caller, req []byte) []byte {
	reply, _ := c.Answer(ctx, caller, req)
	return reply
}

// Answer is RPCI that also reports a request dropped by fault injection
// (answered "0 Dropped" without being handled): the backdoor then leaves
// no reply at all, as for a message that never arrived whole.
func (c *Core) Answer(ctx context.Context, caller Caller, req []byte) (reply []byte, dropped bool) {
	c.trace.Record("rpci", "guest", caller.Transport, req)
	reply, dropped = c.rpci(ctx, caller, req)
	c.count(caller.Transport, func(st *TransportStats) { st.RPCI++ })
	c.trace.Record("rpci", "host", caller.Transport, reply)
	return reply, dropped
}

func (c *Core) rpci(ctx context.Context, caller Caller, req []byte) ([]byte, bool) {
	if len(req) > MaxGuestMessage {
		c.lg.Warn("rpci message over 64 KiB refused", "len", len(req))
		return []byte("0 Message too large"), false
	}
	c.mu.Lock()
	off := c.power != "" && c.power != PoweredOn
	c.mu.Unlock()
	if off {
		// No guest runs in a VM that is off; a late message from a
		// simulated guest that outlived its VM is refused.
		return []byte("0 The VM is not powered on"), false
	}
	name, args := splitRPCI(req)
	if c.faults.wait(ctx, name) {
		return []byte("0 Dropped"), true
	}
	if c.secureDenied(name, caller) {
		return []byte(ReplyPermissionDenied), false
	}
	c.handlersMu.RLock()
	h := c.handlers[name]
	c.handlersMu.RUnlock()
	if h == nil && strings.HasPrefix(name, "tools.capability.") {
		h = c.capability(name)
	}
	if h == nil {
		c.lg.Debug("unknown rpci", "command", vmx.Printable(name))
		return []byte(ReplyUnknownCommand), false
	}
	return h(ctx, caller, args), false
}

// MaxGuestMessage is the largest message a guest may send (64 KiB).
const MaxGuestMessage = vmx.MaxGuestMessage

// splitRPCI splits a request at the first space or NUL: the command name,
// and the bytes after that one separator.
func splitRPCI(req []byte) (string, []byte) {
	i := bytes.IndexAny(req, " \x00")
	if i < 0 {
		return string(req), nil
	}
	return string(req[:i]), req[i+1:]
}

// text returns args as a string without one trailing NUL: most text RPCIs
// are sent with their C terminator.
func text(args []byte) string {
	return string(bytes.TrimSuffix(args, []byte{0}))
}

// Remark writes a remark of the VMX itself to vmware.log.
func (c *Core) Remark(format string, args ...any) { c.log.Host(format, args...) }

// Logger returns the simulator's diagnostics logger.
func (c *Core) Logger() *slog.Logger { return c.lg }

// ReportBackdoor makes the backdoor's counters part of State. The
// backdoor's lock is taken before the core's on the call path (backdoor
// call -> RPCI), so State calls stats without holding the core's lock.
func (c *Core) ReportBackdoor(stats func() vmx.BackdoorStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.backdoor = stats
}

// ReportTrap makes the ptrace trap's counters part of State (the "trap"
// object of `vmxsim ctl state` under `vmxsim run`).
func (c *Core) ReportTrap(stats func() vmx.TrapStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trap = stats
}

var _ vmx.Core = (*Core)(nil)
