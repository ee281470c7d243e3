package backdoor

// Backdoor constants (open-vm-tools backdoor_def.h, guest_msg_def.h).
const (
	Magic   = 0x564D5868 // "VMXh", in EAX on every call
	Port    = 0x5658     // low-bandwidth port
	HBPort  = 0x5659     // high-bandwidth port
	Version = 6          // VERSION_MAGIC: what GETVERSION returns on a VMware VM

	CmdGetVersion = 10
	CmdMessage    = 30
	hbCmdMessage  = 0

	// ProtoRPCI and ProtoTCLO are the protocol numbers given to OPEN.
	ProtoRPCI  uint32 = 0x49435052 // "RPCI"
	ProtoTCLO  uint32 = 0x4f4c4354 // "TCLO"
	flagCookie uint32 = 0x80000000
)

// Message sub-types, in ECX high 16.
const (
	msgOpen = iota
	msgSendSize
	msgSendPayload
	msgRecvSize
	msgRecvPayload
	msgRecvStatus
	msgClose
)

// Status bits, in ECX high 16 (EBX high 16 after an HB call).
const (
	statusSuccess = 0x0001
	statusDoRecv  = 0x0002
	statusCPT     = 0x0010
	statusHB      = 0x0080
)

// Regs is the register file of one backdoor call, in and out. On amd64 the
// fields are RAX..RBP; on arm64 X0..X6 carry the same values. Only the low
// 32 bits matter to the protocol.
type Regs struct {
	AX, BX, CX, DX, SI, DI, BP uint64
}

// Hypercall executes backdoor calls. Native executes the real instruction;
// tests plug in a simulated VMX.
type Hypercall interface {
	// LB is the low-bandwidth call (IN EAX, DX). The caller sets every
	// register but EAX (magic) and DX low 16 (port), which LB sets.
	LB(r *Regs)
	// HBOut sends src with REP OUTSB; the implementation sets EAX, DX low
	// 16, ECX (len(src)) and the source pointer.
	HBOut(r *Regs, src []byte)
	// HBIn receives into dst with REP INSB; the implementation sets EAX,
	// DX low 16, ECX (len(dst)) and the destination pointer.
	HBIn(r *Regs, dst []byte)
}
