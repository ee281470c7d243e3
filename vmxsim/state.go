package vmxsim

import (
	"bytes"
	"maps"
	"strconv"
	"time"

	"github.com/govmtools/govmtools/vmxsim/hgfsd"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
	"github.com/govmtools/govmtools/vmxsim/vmhost"
	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// State is what the VMX knows about its guest, as `vmxsim ctl state`
// prints it.
type State struct {
	// Guestinfo holds guestinfo.* variables, keyed without the prefix.
	Guestinfo map[string]string `json:"guestinfo"`
	Tools     ToolsStatus       `json:"tools"`
	// Capabilities are the tools.capability.* RPCIs as received, latest
	// per capability.
	Capabilities []string   `json:"capabilities"`
	Power        PowerState `json:"power"`
	Guest        GuestState `json:"guest"`
	// Log is the path of vmware.log.
	Log string `json:"log"`
	// Backdoor counts the backdoor calls served by the ptrace trap
	// (vmxsim run); absent under vmxsim serve.
	Backdoor *vmx.BackdoorStats `json:"backdoor,omitempty"`
	// Trap counts the ptrace trap's stops (vmxsim run); absent under
	// vmxsim serve.
	Trap *vmx.TrapStats `json:"trap,omitempty"`
	// HGFS is the shared-folders server: shares, sessions, open handles
	// and round trips.
	HGFS hgfsd.State `json:"hgfs"`
	// Transports counts RPCIs and TCLO channels by transport: vsock,
	// unix (rpci.sock and tclo.sock) and backdoor.
	Transports map[string]TransportStats `json:"transports"`
	// TCLO counts the TCLO messages, both ways.
	TCLO TCLOStats `json:"tclo"`
	// Quiesce is the snapshot driver: the last snapshot operations with
	// every vmbackup event the guest sent, and events outside them.
	Quiesce quiesce.State `json:"quiesce"`
	// Host is what the VM's host reports to toolbox commands: the
	// time-sync option, the removable devices, the disk wiper's use.
	Host vmhost.State `json:"host"`
}

// ToolsStatus is the tools service as vSphere shows it.
type ToolsStatus struct {
	Running     bool   `json:"running"`
	Version     string `json:"version"`
	VersionType string `json:"versionType"`
	// Heartbeat is green, yellow, red or gray.
	Heartbeat string `json:"heartbeat"`
	// Until is when Running or Heartbeat next change if nothing else
	// happens (the heartbeat's colour by time alone), zero if never;
	// changes before it are told by OnChange.
	Until time.Time `json:"-"`
}

// PowerState holds what the guest reported about power operations.
type PowerState struct {
	// State is poweredOn, poweredOff or suspended.
	State           string       `json:"state"`
	LastStateChange *StateChange `json:"lastStateChange"`
	// StateChanges counts the status reports received, so a client can
	// tell a new report from the last one.
	StateChanges int `json:"stateChanges"`
}

// GuestState is the decoded SetGuestInfo and SetGuestDiskInfo data.
type GuestState struct {
	HostName    string `json:"hostName,omitempty"`
	BuildNumber string `json:"buildNumber,omitempty"`
	// IPAddress is guest.ipAddress: the first IPv4 address in NIC order,
	// else the first IPv6 address that is not link-local.
	IPAddress   string       `json:"ipAddress,omitempty"`
	NICs        []GuestNIC   `json:"nics,omitempty"`
	Routes      []GuestRoute `json:"routes,omitempty"`
	DNS         *GuestDNS    `json:"dns,omitempty"`
	OSFullName  string       `json:"osFullName,omitempty"`
	OSShortName string       `json:"osShortName,omitempty"`
	// Detailed is the OS detailed data string (key='value' pairs).
	Detailed string      `json:"detailed,omitempty"`
	Disks    []GuestDisk `json:"disks,omitempty"`
	// Uptime is in hundredths of a second, as the guest reports it.
	Uptime int64 `json:"uptime,omitempty"`
	// NicInfoType is the SetGuestInfo type the NICs came with: 10 (V3)
	// or 9 (the V2 fallback).
	NicInfoType int `json:"nicInfoType,omitempty"`
	// NicInfoUpdates counts the NIC info messages (V3 or V2) accepted,
	// changed or not: what leaves the guest for the VMX and vCenter.
	NicInfoUpdates int `json:"nicInfoUpdates"`
}

// SetGuestInfo types with text payloads (GuestInfoType).
const (
	InfoDNSName     = 1
	InfoBuildNumber = 4
	InfoOSNameFull  = 5
	InfoOSName      = 6
	InfoUptime      = 7
)

// State returns a snapshot of the VM as the host sees it.
func (c *Core) State() State {
	// The backdoor's lock is taken before the core's on the call path
	// (backdoor call -> RPCI), so its stats are read first, as is the
	// TCLO driver's heartbeat.
	c.mu.Lock()
	bd, tr := c.backdoor, c.trap
	c.mu.Unlock()
	var bs *vmx.BackdoorStats
	if bd != nil {
		st := bd()
		bs = &st
	}
	var ts *vmx.TrapStats
	if tr != nil {
		st := tr()
		ts = &st
	}
	running, hb, until := c.tclo.HeartbeatUntil(time.Now())
	qs := c.quiesce.State()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{
		Guestinfo:    maps.Clone(c.guestinfo),
		Capabilities: append([]string{}, c.caps...),
		Tools: ToolsStatus{
			Running:     running,
			Version:     c.tools.version,
			VersionType: c.tools.versionType,
			Heartbeat:   hb,
			Until:       until,
		},
		Log: c.log.Path(),
	}
	s.Backdoor = bs
	s.Trap = ts
	s.Transports = map[string]TransportStats{}
	for k, v := range c.transports {
		s.Transports[k] = *v
	}
	s.Quiesce = qs
	s.TCLO = TCLOStats{Commands: c.tcloCount.commands.Load(), Replies: c.tcloCount.replies.Load()}
	s.Power.State = c.power
	s.Power.StateChanges = c.stateChanges
	if s.Power.State == "" {
		s.Power.State = PoweredOn
	}
	if c.lastState != nil {
		sc := *c.lastState
		s.Power.LastStateChange = &sc
	}
	s.Guest = GuestState{
		HostName:    c.textInfo(InfoDNSName),
		BuildNumber: c.textInfo(InfoBuildNumber),
		OSFullName:  c.textInfo(InfoOSNameFull),
		OSShortName: c.textInfo(InfoOSName),
	}
	s.HGFS = c.hgfs.State()
	s.Host = c.host.State()
	if up, err := strconv.ParseInt(c.textInfo(InfoUptime), 10, 64); err == nil {
		s.Guest.Uptime = up
	}
	c.decodeGuestInfo(&s.Guest)
	return s
}

// OnChange registers f to be called after each change of what State
// reports under Tools (but the heartbeat's colour by time alone: see
// ToolsStatus.Until), Power.State and Guest, so that a watcher (the
// vSphere front end) reads State when it changed instead of polling it.
// f may be called with the core's locks held, from any goroutine: it
// must not block nor call the core.
func (c *Core) OnChange(f func()) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	old := c.watchers.Load()
	fs := []func(){f}
	if old != nil {
		fs = append(append([]func(){}, *old...), f)
	}
	c.watchers.Store(&fs)
}

// changed tells the OnChange watchers.
func (c *Core) changed() {
	if fs := c.watchers.Load(); fs != nil {
		for _, f := range *fs {
			f()
		}
	}
}

// textInfo returns a text SetGuestInfo value without its C terminator.
// Preconditions: c.mu is held.
func (c *Core) textInfo(typ int) string {
	return string(bytes.TrimRight(c.guestInfoRaw[typ], "\x00"))
}
