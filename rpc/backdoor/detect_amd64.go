package backdoor

import (
	"encoding/binary"
	"fmt"
)

// cpuid executes CPUID (hypercall_amd64.s); it is safe everywhere.
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// HypervisorSignature returns the 12-byte vendor string of CPUID leaf
// 0x40000000, or "" when the CPU reports no hypervisor (CPUID.1:ECX[31]).
func HypervisorSignature() string {
	_, _, ecx, _ := cpuid(1, 0)
	if ecx&(1<<31) == 0 {
		return ""
	}
	_, b, c, d := cpuid(0x40000000, 0)
	var sig [12]byte
	binary.LittleEndian.PutUint32(sig[0:], b)
	binary.LittleEndian.PutUint32(sig[4:], c)
	binary.LittleEndian.PutUint32(sig[8:], d)
	return string(sig[:])
}

func platformSaysVMware() error {
	sig := HypervisorSignature()
	if sig == VMwareSignature {
		return nil
	}
	if sig == "" {
		return fmt.Errorf("%w: no hypervisor", ErrNotVMware)
	}
	return fmt.Errorf("%w: hypervisor says %q", ErrNotVMware, sig)
}
