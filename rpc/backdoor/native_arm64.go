package backdoor

import (
	"runtime"
	"unsafe"
)

// Implemented in hypercall_arm64.s: X0..X5 (X6 for HB) are loaded from r,
// X7 is set to 0x86<<32 | the x86 I/O description, and MRS XZR,
// MDCCSR_EL0 traps to the hypervisor, which performs the x86 I/O
// instruction on those registers.
//
//go:noescape
func lbCall(r *Regs)

//go:noescape
func hbOutCall(r *Regs, src unsafe.Pointer)

//go:noescape
func hbInCall(r *Regs, dst unsafe.Pointer)

// Native executes the backdoor trap of this CPU. It must only be used after
// Detect has succeeded: outside VMware the first call kills the process
// with SIGILL.
type Native struct{}

func (Native) LB(r *Regs) {
	r.AX = Magic
	r.DX = r.DX&^0xffff | Port
	lbCall(r)
}

// HBOut: the x86 string instruction reads from RSI, so the pointer goes in
// X4 (SI).
func (Native) HBOut(r *Regs, src []byte) {
	r.AX = Magic
	r.DX = r.DX&^0xffff | HBPort
	r.CX = uint64(len(src))
	if len(src) == 0 {
		return
	}
	hbOutCall(r, unsafe.Pointer(&src[0]))
	runtime.KeepAlive(src)
}

// HBIn: the destination pointer goes in X5 (DI).
func (Native) HBIn(r *Regs, dst []byte) {
	r.AX = Magic
	r.DX = r.DX&^0xffff | HBPort
	r.CX = uint64(len(dst))
	if len(dst) == 0 {
		return
	}
	hbInCall(r, unsafe.Pointer(&dst[0]))
	runtime.KeepAlive(dst)
}
