package backdoor

import (
	"fmt"
	"os"
	"strings"
)

// dmiVendor is where Linux exposes the SMBIOS system manufacturer.
const dmiVendor = "/sys/class/dmi/id/sys_vendor"

// HypervisorSignature returns "" on arm64, which has no CPUID.
func HypervisorSignature() string { return "" }

// platformSaysVMware reads the SMBIOS system vendor. arm64 has no CPUID,
// and open-vm-tools' answer (execute the MRS trap under a SIGILL handler)
// is not open to Go, whose runtime treats SIGILL in Go code as fatal. VMware's
// arm64 platforms (ESXi-Arm, Fusion on Apple silicon) boot UEFI with SMBIOS
// tables whose system manufacturer is "VMware, Inc.", which Linux exposes
// without privilege.
func platformSaysVMware() error {
	b, err := os.ReadFile(dmiVendor)
	if err != nil {
		return fmt.Errorf("%w: no SMBIOS vendor (%v)", ErrNotVMware, err)
	}
	v := strings.TrimSpace(string(b))
	if !strings.HasPrefix(v, "VMware") {
		return fmt.Errorf("%w: system vendor is %q", ErrNotVMware, v)
	}
	return nil
}
