package backdoor

import (
	"errors"
	"fmt"
)

// ErrNotVMware is returned by Detect when the machine is not a VMware VM.
var ErrNotVMware = errors.New("backdoor: not a VMware VM")

// ErrUnavailable is returned for a backdoor that does not exist on this
// architecture.
var ErrUnavailable = errors.New("backdoor: transport not available in this build")

// VMwareSignature is the hypervisor vendor string of CPUID leaf 0x40000000
// on VMware.
const VMwareSignature = "VMwareVMware"

// Detect reports whether this is a VMware VM whose backdoor answers. It
// first asks the platform without touching the backdoor (CPUID leaf
// 0x40000000 on amd64, the DMI system vendor on arm64); only when that says
// VMware does it execute GETVERSION, which must return version 6. It
// returns nil on VMware (and under vmxsim run), and otherwise an error
// wrapping ErrNotVMware that names what was seen.
func Detect() error {
	if err := platformSaysVMware(); err != nil {
		return err
	}
	v, _, err := GetVersion(Native{})
	if err != nil {
		return err
	}
	if v != Version {
		return fmt.Errorf("%w: backdoor version %d, want %d", ErrNotVMware, v, Version)
	}
	return nil
}

// GetVersion executes GETVERSION on h and returns the backdoor version and
// the VMX type (2 ESX, 4 Workstation, ...). Only call it with Native after
// the platform said VMware.
func GetVersion(h Hypercall) (version, vmxType uint32, err error) {
	r := Regs{BX: ^uint64(Magic) & 0xFFFFFFFF, CX: 0xFFFF<<16 | CmdGetVersion}
	h.LB(&r)
	if uint32(r.BX) != Magic || uint32(r.AX) == 0xFFFFFFFF {
		return 0, 0, fmt.Errorf("%w: no answer to GETVERSION", ErrNotVMware)
	}
	return uint32(r.AX), uint32(r.CX), nil
}
