//go:build amd64 || arm64

package backdoor

import (
	"runtime"
	"unsafe"
)

// Native executes the backdoor instructions of this CPU (lbCall,
// hbOutCall and hbInCall, in hypercall_$GOARCH.s). It must only be used
// after Detect has succeeded: outside VMware (or vmxsim run) the first
// call kills the process (SIGSEGV on amd64, SIGILL on arm64).
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
