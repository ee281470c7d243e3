package backdoor

import "unsafe"

// Implemented in hypercall_arm64.s: X0..X5 (X6 for HB) are loaded from r,
// X7 is set to 0x86<<32 | the x86 I/O description, and MRS XZR,
// MDCCSR_EL0 traps to the hypervisor, which performs the x86 I/O
// instruction on those registers.
//
//go:noescape
func lbCall(r *Regs)

// hbOutCall: the x86 string instruction reads from RSI, so src goes in
// X4 (SI).
//
//go:noescape
func hbOutCall(r *Regs, src unsafe.Pointer)

// hbInCall: the destination pointer goes in X5 (DI).
//
//go:noescape
func hbInCall(r *Regs, dst unsafe.Pointer)
