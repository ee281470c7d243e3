// Package backdoor owns the VMware backdoor: the I/O-port hypercall on
// amd64 (ports 0x5658/0x5659) and the MRS MDCCSR_EL0 trap on arm64, the
// GuestRPC message channel on top of it, and VM detection.
//
// Executing a backdoor instruction outside VMware kills a Go program with a
// fault it cannot recover from, so nothing here touches the backdoor until
// Detect has seen the hypervisor say so (CPUID leaf 0x40000000 reads
// "VMwareVMware" on amd64).
//
// The message channel is not built yet; Open reports ErrUnavailable.
package backdoor
