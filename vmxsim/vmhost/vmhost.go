// Package vmhost is what the simulated VMX knows about the virtual
// machine and its host that guests ask about outside GuestRPC's
// TCLO/guestinfo traffic, as vmware-toolbox-cmd does: the processor speed
// (backdoor GETMHZ), the time-sync GUI option (GETGUIOPTIONS, and the
// "vmx.set_option synctime" RPCI that changes it), the removable devices
// (GETDEVICELISTELEMENT, TOGGLEDEVICE), the guestlib statistics
// ("guestlib.info.get", "guestlib.stat.get") and the disk wiper
// ("disk.wiper.enable", "disk.shrink").
//
// The backdoor calls arrive through HostCall (vmx.Core), the RPCIs through
// the handlers Register adds to the core.
package vmhost

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
)

// Backdoor commands served here (backdoor_def.h).
const (
	CmdGetMHz               = 1
	CmdGetDeviceListElement = 11
	CmdToggleDevice         = 12
	CmdGetGUIOptions        = 13
)

// GUISyncTime is the GETGUIOPTIONS bit of time synchronization
// (VMWARE_GUI_SYNC_TIME).
const GUISyncTime = 0x400

// Device is one removable device of the VM, as GETDEVICELISTELEMENT
// describes it (RD_Info: a 32-byte name, a uid, an enabled flag).
type Device struct {
	Name    string `json:"name"`
	UID     uint32 `json:"uid"`
	Enabled bool   `json:"enabled"`
	// Locked devices refuse TOGGLEDEVICE (EAX 0), as a VMX does for a
	// device whose connection the host does not let the guest change.
	Locked bool `json:"locked,omitempty"`
}

// Stats are the guestlib V2 statistics (ids 1..20 of guestlibV3.x) the
// host reports.
type Stats struct {
	CPUReservationMHz, CPULimitMHz, CPUShares uint32
	CPUUsedMs                                 uint64
	HostMHz                                   uint32
	MemReservationMB, MemLimitMB, MemShares   uint32
	MemMappedMB, MemActiveMB, MemOverheadMB   uint32
	MemBalloonedMB, MemSwappedMB, MemSharedMB uint32
	MemSharedSavedMB, MemUsedMB               uint32
	ElapsedMs                                 uint64
	ResourcePoolPath                          string
	CPUStolenMs, MemTargetSizeMB              uint64
}

// Options configure a Host. The zero value is an ESXi-like host.
type Options struct {
	// MHz is what GETMHZ answers; 0 means 2400.
	MHz uint32
	// SyncTime is the initial time-sync option.
	SyncTime bool
	// Devices are the removable devices; nil means DefaultDevices.
	Devices []Device
	// Stats are the guestlib statistics; nil means DefaultStats.
	Stats *Stats
	// SessionID is the guestlib session; 0 means a fixed default.
	SessionID uint64
	// NoGuestlib answers guestlib.info.get as a host without the Guest
	// API ("Unknown command").
	NoGuestlib bool
	// Wiper makes disk.wiper.enable answer "1" (shrinking allowed); by
	// default it answers "0", as vSphere does for most disks.
	Wiper bool
}

// DefaultDevices are the removable devices of a default vSphere VM.
func DefaultDevices() []Device {
	return []Device{{Name: "ide1:0", UID: 1, Enabled: true}, {Name: "ethernet0", UID: 2, Enabled: true}}
}

// DefaultStats are the statistics of an unconstrained VM: no
// reservations, limits "unlimited" (0xFFFFFFFF, as ESXi reports -1).
func DefaultStats() *Stats {
	return &Stats{
		CPULimitMHz: 0xFFFFFFFF, CPUShares: 1000, HostMHz: 2400,
		MemLimitMB: 0xFFFFFFFF, MemShares: 20480, MemMappedMB: 1024, MemActiveMB: 100,
		MemOverheadMB: 30, MemUsedMB: 1024, ResourcePoolPath: "/", MemTargetSizeMB: 1024,
	}
}

const defaultSession = 0x1d2c3b4a59687766

// Host is the simulated host's view of the VM. It is safe for concurrent
// use.
type Host struct {
	mu   sync.Mutex
	opts Options
	devs []Device
	sync bool

	wiperAsks, shrinks, syncSets int
}

// New returns a host.
func New(opts Options) *Host {
	if opts.MHz == 0 {
		opts.MHz = 2400
	}
	if opts.Devices == nil {
		opts.Devices = DefaultDevices()
	}
	if opts.Stats == nil {
		opts.Stats = DefaultStats()
	}
	if opts.SessionID == 0 {
		opts.SessionID = defaultSession
	}
	return &Host{opts: opts, devs: append([]Device(nil), opts.Devices...), sync: opts.SyncTime}
}

// RPCIHandlers are the RPCI commands the host answers, by name; each gets
// the arguments after the name and returns the whole reply ("1 ..." or
// "0 ...").
func (h *Host) RPCIHandlers() map[string]func(ctx context.Context, args []byte) []byte {
	return map[string]func(context.Context, []byte) []byte{
		"vmx.set_option":    h.rpciSetOption,
		"guestlib.info.get": h.rpciGuestlibInfo,
		"guestlib.stat.get": h.rpciGuestlibStat,
		"disk.wiper.enable": h.rpciWiper,
		"disk.shrink":       h.rpciShrink,
	}
}

// HostCall serves the backdoor commands of this package: bx is EBX in,
// the results are EAX and EBX out; ok is false for other commands.
func (h *Host) HostCall(cmd uint16, bx uint32) (ax, bxOut uint32, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch cmd {
	case CmdGetMHz:
		return h.opts.MHz, bx, true
	case CmdGetGUIOptions:
		if h.sync {
			return GUISyncTime, bx, true
		}
		return 0, bx, true
	case CmdGetDeviceListElement:
		id, off := bx>>16, bx&0xFFFF
		if int(id) >= len(h.devs) || off >= rdInfoSize || off%4 != 0 {
			return 0, bx, true
		}
		rec := rdInfo(h.devs[id])
		return 1, binary.LittleEndian.Uint32(rec[off:]), true
	case CmdToggleDevice:
		id, connect := bx&0x7FFFFFFF, bx&0x80000000 != 0
		if int(id) >= len(h.devs) || h.devs[id].Locked {
			return 0, bx, true
		}
		h.devs[id].Enabled = connect
		return 1, bx, true
	}
	return 0, 0, false
}

// rdInfoSize is sizeof(RD_Info): name[32], uid, Bool enabled, padding.
const rdInfoSize = 40

func rdInfo(d Device) [rdInfoSize]byte {
	var b [rdInfoSize]byte
	copy(b[:31], d.Name)
	binary.LittleEndian.PutUint32(b[32:], d.UID)
	if d.Enabled {
		b[36] = 1
	}
	return b
}

// text is an RPCI argument string without the C terminator a guest may
// send.
func text(args []byte) string { return strings.TrimRight(string(args), "\x00") }

// rpciSetOption handles "vmx.set_option NAME OLD NEW": only synctime is
// known here; NEW becomes the option's value.
func (h *Host) rpciSetOption(_ context.Context, args []byte) []byte {
	f := strings.Fields(text(args))
	if len(f) != 3 {
		return []byte("0 Invalid arguments")
	}
	if f[0] != "synctime" {
		return []byte("0 Unknown option")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sync = f[2] == "1" || f[2] == "TRUE" || f[2] == "true"
	h.syncSets++
	return []byte("1 ")
}

// rpciGuestlibInfo answers "guestlib.info.get VERSION": version 3 is the
// header (version, session id, data size, little-endian, packed) and the
// XDR statistics; other versions get the highest one supported.
func (h *Host) rpciGuestlibInfo(_ context.Context, args []byte) []byte {
	if h.opts.NoGuestlib {
		return []byte("0 Unknown command")
	}
	if strings.TrimSpace(text(args)) != "3" {
		return []byte("0 Unsupported version:3")
	}
	h.mu.Lock()
	st, sid := *h.opts.Stats, h.opts.SessionID
	h.mu.Unlock()
	data := encodeStats(&st)
	reply := []byte("1 ")
	reply = binary.LittleEndian.AppendUint32(reply, 3)
	reply = binary.LittleEndian.AppendUint64(reply, sid)
	reply = binary.LittleEndian.AppendUint32(reply, uint32(len(data)))
	return append(reply, data...)
}

// encodeStats is the XDR of the V2 statistics: a count, then for each id
// its discriminant, valid flag and value.
func encodeStats(s *Stats) []byte {
	var b []byte
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	stat32 := func(id, v uint32) { u32(id); u32(1); u32(v) }
	stat64 := func(id uint32, v uint64) { u32(id); u32(1); u64(v) }
	u32(20)
	stat32(1, s.CPUReservationMHz)
	stat32(2, s.CPULimitMHz)
	stat32(3, s.CPUShares)
	stat64(4, s.CPUUsedMs)
	stat32(5, s.HostMHz)
	for i, v := range []uint32{s.MemReservationMB, s.MemLimitMB, s.MemShares, s.MemMappedMB, s.MemActiveMB,
		s.MemOverheadMB, s.MemBalloonedMB, s.MemSwappedMB, s.MemSharedMB, s.MemSharedSavedMB, s.MemUsedMB} {
		stat32(uint32(6+i), v)
	}
	stat64(17, s.ElapsedMs)
	u32(18)
	u32(1)
	u32(uint32(len(s.ResourcePoolPath)))
	b = append(b, s.ResourcePoolPath...)
	b = append(b, make([]byte, (4-len(s.ResourcePoolPath)%4)%4)...)
	stat64(19, s.CPUStolenMs)
	stat64(20, s.MemTargetSizeMB)
	return b
}

// rpciGuestlibStat answers "guestlib.stat.get ENCODING STAT [PARAM]" with
// a small text document for the stats it knows, and refuses the others.
func (h *Host) rpciGuestlibStat(_ context.Context, args []byte) []byte {
	f := strings.Fields(text(args))
	h.mu.Lock()
	st := *h.opts.Stats
	h.mu.Unlock()
	switch {
	case len(f) == 0:
		return []byte("1 session\nhost\nresources\nvscsi\nvnet\n")
	case len(f) >= 2 && f[0] == "text" && f[1] == "resources":
		return fmt.Appendf(nil, "1 cpu.reservation.mhz = %d\ncpu.limit.mhz = %d\nmem.reservation.mb = %d\nmem.limit.mb = %d\nmem.ballooned.mb = %d\nmem.swapped.mb = %d\n",
			st.CPUReservationMHz, int32(st.CPULimitMHz), st.MemReservationMB, int32(st.MemLimitMB), st.MemBalloonedMB, st.MemSwappedMB)
	}
	return []byte("0 Unknown stat")
}

func (h *Host) rpciWiper(_ context.Context, _ []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wiperAsks++
	if h.opts.Wiper {
		return []byte("1 1")
	}
	return []byte("1 0")
}

func (h *Host) rpciShrink(_ context.Context, _ []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.opts.Wiper {
		return []byte("0 Shrinking is disabled")
	}
	h.shrinks++
	return []byte("1 ")
}

// State is the host's part of `vmxsim ctl state`.
type State struct {
	SyncTime     bool     `json:"syncTime"`
	SyncTimeSets int      `json:"syncTimeSets"`
	Devices      []Device `json:"devices"`
	WiperAsks    int      `json:"wiperAsks"`
	Shrinks      int      `json:"shrinks"`
}

// State returns a snapshot.
func (h *Host) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return State{SyncTime: h.sync, SyncTimeSets: h.syncSets, Devices: append([]Device(nil), h.devs...), WiperAsks: h.wiperAsks, Shrinks: h.shrinks}
}
