#include "textflag.h"

// Regs field offsets.
#define R_AX 0
#define R_BX 8
#define R_CX 16
#define R_DX 24
#define R_SI 32
#define R_DI 40
#define R_BP 48

// func lbCall(r *Regs)
// IN EAX, DX. The VMX may change RAX, RBX, RCX, RDX, RSI and RDI.
TEXT ·lbCall(SB), NOSPLIT, $0-8
	MOVQ r+0(FP), R8
	MOVQ R_AX(R8), AX
	MOVQ R_BX(R8), BX
	MOVQ R_CX(R8), CX
	MOVQ R_DX(R8), DX
	MOVQ R_SI(R8), SI
	MOVQ R_DI(R8), DI
	INL
	MOVQ AX, R_AX(R8)
	MOVQ BX, R_BX(R8)
	MOVQ CX, R_CX(R8)
	MOVQ DX, R_DX(R8)
	MOVQ SI, R_SI(R8)
	MOVQ DI, R_DI(R8)
	RET

// func hbOutCall(r *Regs, src unsafe.Pointer)
// CLD; REP OUTSB with RSI = src, RDI = cookie low, RBP = cookie high. RBP
// is the caller's frame pointer: it is saved in R12 (which the VMX leaves
// alone) and restored before anything else can see it.
TEXT ·hbOutCall(SB), NOSPLIT, $0-16
	MOVQ BP, R12
	MOVQ r+0(FP), R8
	MOVQ src+8(FP), SI
	MOVQ R_AX(R8), AX
	MOVQ R_BX(R8), BX
	MOVQ R_CX(R8), CX
	MOVQ R_DX(R8), DX
	MOVQ R_DI(R8), DI
	MOVQ R_BP(R8), BP
	CLD
	REP; OUTSB
	MOVQ AX, R_AX(R8)
	MOVQ BX, R_BX(R8)
	MOVQ CX, R_CX(R8)
	MOVQ DX, R_DX(R8)
	MOVQ SI, R_SI(R8)
	MOVQ DI, R_DI(R8)
	MOVQ BP, R_BP(R8)
	MOVQ R12, BP
	RET

// func hbInCall(r *Regs, dst unsafe.Pointer)
// CLD; REP INSB with RDI = dst, RSI = cookie high, RBP = cookie low.
TEXT ·hbInCall(SB), NOSPLIT, $0-16
	MOVQ BP, R12
	MOVQ r+0(FP), R8
	MOVQ dst+8(FP), DI
	MOVQ R_AX(R8), AX
	MOVQ R_BX(R8), BX
	MOVQ R_CX(R8), CX
	MOVQ R_DX(R8), DX
	MOVQ R_SI(R8), SI
	MOVQ R_BP(R8), BP
	CLD
	REP; INSB
	MOVQ AX, R_AX(R8)
	MOVQ BX, R_BX(R8)
	MOVQ CX, R_CX(R8)
	MOVQ DX, R_DX(R8)
	MOVQ SI, R_SI(R8)
	MOVQ DI, R_DI(R8)
	MOVQ BP, R_BP(R8)
	MOVQ R12, BP
	RET

// func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL subleaf+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
