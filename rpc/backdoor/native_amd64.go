package backdoor

import "unsafe"

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
