package toolboxcmd

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
)

// Backdoor commands vmware-toolbox-cmd makes (backdoor_def.h).
const (
	cmdGetMHz               = 1
	cmdGetDeviceListElement = 11
	cmdToggleDevice         = 12
	cmdGetGUIOptions        = 13
	cmdGetTime              = 23
	cmdGetTimeFull          = 46
)

// guiSyncTime is GETGUIOPTIONS' time-sync bit (VMWARE_GUI_SYNC_TIME).
const guiSyncTime = 0x400

// lb makes a backdoor call with cmd and bx; without a backdoor every
// register reads 0, which each caller takes as the VMX's refusal (the
// C tool's Backdoor() has no failure to report either).
func (r *run) lb(cmd uint16, bx uint32) backdoor.Regs {
	regs := backdoor.Regs{AX: backdoor.Magic, BX: uint64(bx), CX: uint64(cmd), DX: backdoor.Port}
	if r.Host == nil || r.Host.LB(&regs) != nil {
		return backdoor.Regs{}
	}
	return regs
}

// rpcReply sends req and returns the reply payload, the host's reason on
// a "0 " reply (ok false), or ok false and an empty reason when the VMX
// cannot be reached.
func (r *run) rpcReply(req string) (reply string, ok bool) {
	if r.Host == nil {
		return "", false
	}
	b, err := r.Host.RPC(r.ctx, []byte(req))
	var re *rpc.ReplyError
	switch {
	case err == nil:
		return string(b), true
	case errors.As(err, &re):
		return re.Text, false
	}
	return "", false
}

// timesync is `timesync enable|disable|status`.
func (r *run) timesync() int {
	synced := func() bool { return uint32(r.lb(cmdGetGUIOptions, 0).AX)&guiSyncTime != 0 }
	switch sub := r.args[1]; sub {
	case "enable", "disable":
		on := synced()
		want := sub == "enable"
		if on != want {
			// With the C string's terminator, as open-vm-tools sends it.
			req := "vmx.set_option synctime " + b01(!want) + " " + b01(want) + "\x00"
			if reply, ok := r.rpcReply(req); !ok {
				// The host's reason; "" when the VMX could not be reached.
				r.printErr("Error: %s\n", reply)
				return ExitFailure
			}
		}
		r.print("%s\n", enabledText(want))
		return ExitOK
	case "status":
		on := synced()
		r.print("%s\n", enabledText(on))
		if on {
			return ExitOK
		}
		return ExUnavailable
	default:
		return r.unknown("subcommand", sub)
	}
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func enabledText(b bool) string {
	if b {
		return "Enabled"
	}
	return "Disabled"
}

// stat is `stat SUBCOMMAND`.
func (r *run) stat() int {
	switch sub := r.args[1]; sub {
	case "hosttime":
		return r.statHostTime()
	case "speed":
		mhz := int32(uint32(r.lb(cmdGetMHz, 0).AX))
		if mhz <= 0 {
			r.printErr("Unable to get processor speed.\n")
			return ExTempFail
		}
		r.out("%d MHz\n", mhz)
		return ExitOK
	case "sessionid":
		return r.statGuestlib(func(g *guestlib) (string, string, error) {
			return "Failed to get session ID", "0x" + hex(g.session), nil
		})
	case "raw":
		return r.statRaw()
	default:
		if s, ok := guestlibStats[sub]; ok {
			return r.statGuestlib(func(g *guestlib) (string, string, error) {
				v, err := g.u32(s.id)
				return s.fail, utoa(v) + s.unit, err
			})
		}
		return r.unknown("subcommand", sub)
	}
}

// statHostTime prints the host's clock as strftime("%d %b %Y %H:%M:%S")
// of local time: GETTIMEFULL, or GETTIME on VMXs without it.
func (r *run) statHostTime() int {
	var sec int64
	regs := r.lb(cmdGetTimeFull, 0)
	if uint32(regs.AX) == backdoor.Magic {
		sec = int64(uint64(uint32(regs.SI))<<32 | uint64(uint32(regs.DX)))
	} else {
		regs = r.lb(cmdGetTime, 0)
		if uint32(regs.AX) == 0xFFFFFFFF {
			sec = -1
		} else {
			sec = int64(uint32(regs.AX))
		}
	}
	if sec <= 0 {
		r.printErr("Unable to get host time.\n")
		return ExTempFail
	}
	sec += int64(uint32(regs.BX)) / 1e6
	loc := r.Location
	if loc == nil {
		loc = time.Local
	}
	r.out("%s\n", time.Unix(sec, 0).In(loc).Format("02 Jan 2006 15:04:05"))
	return ExitOK
}

// device is `device list|status|enable|disable [DEV]`.
func (r *run) device() int {
	sub := r.args[1]
	haveDev := len(r.args) > 2
	switch sub {
	case "list":
		for id := range maxDevices {
			if d, ok := r.deviceInfo(uint16(id)); ok && d.name != "" {
				r.out("%s: %s\n", d.name, enabledText(d.enabled))
			}
		}
		return ExitOK
	case "status", "enable", "disable":
		if !haveDev {
			return r.missing("device name")
		}
	default:
		return r.unknown("subcommand", sub)
	}
	name := r.args[2]
	for id := range maxDevices {
		d, ok := r.deviceInfo(uint16(id))
		if !ok || d.name != name {
			continue
		}
		if sub == "status" {
			r.print("%s\n", enabledText(d.enabled))
			if d.enabled {
				return ExitOK
			}
			return ExUnavailable
		}
		enable := sub == "enable"
		bx := uint32(id)
		if enable {
			bx |= 0x80000000
		}
		if r.lb(cmdToggleDevice, bx).AX == 0 {
			if enable {
				r.printErr("Unable to connect device %s.\n", d.name)
			} else {
				r.printErr("Unable to disconnect device %s.\n", d.name)
			}
			return ExTempFail
		}
		r.print("%s\n", enabledText(enable))
		return ExitOK
	}
	r.printErr("Error fetching interface information: device not found.\n")
	return ExOSFile
}

// maxDevices is how many device ids are scanned (MAX_DEVICES).
const maxDevices = 50

type deviceInfo struct {
	name    string
	enabled bool
}

// deviceInfo reads device id's 40-byte RD_Info record, 4 bytes a call.
func (r *run) deviceInfo(id uint16) (deviceInfo, bool) {
	var rec [40]byte
	for off := 0; off < len(rec); off += 4 {
		regs := r.lb(cmdGetDeviceListElement, uint32(id)<<16|uint32(off))
		if uint32(regs.AX) == 0 {
			return deviceInfo{}, false
		}
		binary.LittleEndian.PutUint32(rec[off:], uint32(regs.BX))
	}
	name := rec[:32]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	return deviceInfo{name: string(name), enabled: rec[36] != 0}, true
}
