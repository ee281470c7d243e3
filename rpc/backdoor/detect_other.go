//go:build !amd64 && !arm64

package backdoor

import (
	"fmt"
	"runtime"
)

// HypervisorSignature returns "" where CPUID does not exist.
func HypervisorSignature() string { return "" }

func platformSaysVMware() error {
	return fmt.Errorf("%w: no backdoor on %s", ErrNotVMware, runtime.GOARCH)
}

// Native has no instruction to execute here: every call fails, as on a
// VMX that does not answer.
type Native struct{}

func (Native) LB(r *Regs)                { r.AX, r.BX, r.CX = 0xFFFFFFFF, 0, 0 }
func (Native) HBOut(r *Regs, src []byte) { r.BX = 0 }
func (Native) HBIn(r *Regs, dst []byte)  { r.BX = 0 }
