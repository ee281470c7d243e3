// Package backdoor owns the VMware backdoor: the I/O-port hypercall on
// amd64 (IN on port 0x5658, REP OUTSB/INSB on 0x5659) and the MRS
// MDCCSR_EL0 trap on arm64, the GuestRPC message channel on top of it
// (Channel, an rpc.Channel of the polling shape), and VM detection
// (Detect).
//
// Executing a backdoor instruction outside VMware kills a Go program with a
// fault it cannot recover from, so nothing here touches the backdoor until
// the platform has said VMware: CPUID leaf 0x40000000 reads "VMwareVMware"
// on amd64, the SMBIOS system vendor reads "VMware, Inc." on arm64 (which
// has no CPUID; see detect_arm64.go). Only then does Detect execute
// GETVERSION, which must return version 6. On development machines the
// same code path runs under `vmxsim run`, which traps the instructions.
//
// # Why this package does not use vmw-guestinfo
//
// vmw-guestinfo's message layer is the usual Go model, and its register
// conventions are right, but running it against real bytes under the trap
// showed two bugs, so the layer is owned here:
//   - its low-bandwidth send packs a 3-byte tail reversed and shifted (the
//     word it puts in EBX holds 0, b2, b1, b0 from the low byte up instead
//     of b0, b1, b2, 0), so any message whose length is 3 mod 4 reaches the
//     VMX corrupted when the host lacks the high-bandwidth port; here every
//     1-3 byte tail is the little-endian low bytes of the word, upper bytes
//     zero, as open-vm-tools' message.c packs and unpacks it, and tests
//     cover every residue mod 4 on both paths;
//   - its high-bandwidth assembly loads RBP without saving it, which
//     corrupts the frame pointer Go's tracebacks and profilers walk (go vet
//     reports it); here RBP is saved in R12 and restored at once, and vet
//     passes for amd64 and arm64;
//   - it does no checkpoint (CPT) retry on the low-bandwidth send, and does
//     not tell the VMX about a local receive failure; both are done here
//     as open-vm-tools does.
//
// The arm64 path follows backdoor_def.h: X0..X6 carry RAX..RBP, X7<63:32>
// = 0x86 and X7<31:0> describe the x86 I/O instruction, and MRS XZR,
// MDCCSR_EL0 traps from EL0. It is compile-checked (GOARCH=arm64 go vet
// and build) but has not run on VMware arm64 hardware here.
package backdoor
