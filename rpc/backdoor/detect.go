package backdoor

import "errors"

// ErrNotVMware is returned by Detect when the machine is not a VMware VM.
var ErrNotVMware = errors.New("backdoor: not a VMware VM")

// ErrUnavailable is returned for a backdoor that is not implemented here.
var ErrUnavailable = errors.New("backdoor: transport not available in this build")

// VMwareSignature is the hypervisor vendor string of CPUID leaf 0x40000000
// on VMware.
const VMwareSignature = "VMwareVMware"

// Detect reports whether this is a VMware VM, without touching the
// backdoor. It returns nil on VMware and an error wrapping ErrNotVMware
// that names what was seen otherwise.
func Detect() error { return detect() }
