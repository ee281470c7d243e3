package backdoor

import (
	"runtime"
	"unsafe"
)

// Implemented in hypercall_amd64.s. Each loads RAX..RDI (and RBP for the
// HB calls, saving and restoring the caller's frame pointer) from r,
// executes the instruction and stores the registers back.
//
//go:noescape
func lbCall(r *Regs)

//go:noescape
func hbOutCall(r *Regs, src unsafe.Pointer)

//go:noescape
func hbInCall(r *Regs, dst unsafe.Pointer)

// Native executes the backdoor instructions of this CPU. It must only be
// used after Detect has succeeded: outside VMware (or vmxsim run) the
// first call kills the process with SIGSEGV.
type Native struct{}

func (Native) LB(r *Regs) {
	r.AX = Magic
	r.DX = r.DX&^0xffff | Port
	lbCall(r)
}

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
