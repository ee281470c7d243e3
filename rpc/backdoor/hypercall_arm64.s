#include "textflag.h"

// The arm64 backdoor (backdoor_def.h): X0..X6 carry what RAX..RBP carry on
// x86; X7<63:32> = X86_IO_MAGIC (0x86) and X7<31:0> describes the x86 I/O
// instruction; MRS XZR, MDCCSR_EL0 from EL0 traps to the hypervisor.
// W7 bits: size 0..1 (2 = 4 bytes), DIR 2 (in), WITH 3 (with magic),
// STR 4 (REP string instruction).
//
//	LB IN EAX, DX:  WITH|DIR|size 4  = 0x0E
//	HB REP INSB:    STR|WITH|DIR     = 0x1C
//	HB REP OUTSB:   STR|WITH         = 0x18
//
// R29 (the frame pointer) is never touched.

// func lbCall(r *Regs)
TEXT ·lbCall(SB), NOSPLIT, $0-8
	MOVD r+0(FP), R8
	LDP  32(R8), (R4, R5)
	LDP  16(R8), (R2, R3)
	LDP  0(R8), (R0, R1)
	MOVD $0x860000000E, R7
	MRS  MDCCSR_EL0, ZR
	STP  (R4, R5), 32(R8)
	STP  (R2, R3), 16(R8)
	STP  (R0, R1), 0(R8)
	RET

// func hbOutCall(r *Regs, src unsafe.Pointer)
TEXT ·hbOutCall(SB), NOSPLIT, $0-16
	MOVD r+0(FP), R8
	LDP  40(R8), (R5, R6)
	LDP  24(R8), (R3, R4)
	LDP  8(R8), (R1, R2)
	MOVD 0(R8), R0
	MOVD src+8(FP), R4
	MOVD $0x8600000018, R7
	MRS  MDCCSR_EL0, ZR
	STP  (R5, R6), 40(R8)
	STP  (R3, R4), 24(R8)
	STP  (R1, R2), 8(R8)
	MOVD R0, 0(R8)
	RET

// func hbInCall(r *Regs, dst unsafe.Pointer)
TEXT ·hbInCall(SB), NOSPLIT, $0-16
	MOVD r+0(FP), R8
	LDP  40(R8), (R5, R6)
	LDP  24(R8), (R3, R4)
	LDP  8(R8), (R1, R2)
	MOVD 0(R8), R0
	MOVD dst+8(FP), R5
	MOVD $0x860000001C, R7
	MRS  MDCCSR_EL0, ZR
	STP  (R5, R6), 40(R8)
	STP  (R3, R4), 24(R8)
	STP  (R1, R2), 8(R8)
	MOVD R0, 0(R8)
	RET
