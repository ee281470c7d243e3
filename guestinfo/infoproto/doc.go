// Package infoproto is the pure wire codec of guest info reporting
// (docs/architecture.md section 6): the SetGuestInfo and SetGuestDiskInfo
// message framing, the NicInfo V3 XDR structure (GuestNicProto, used by
// INFO_IPADDRESS_V3 and the 64-IP INFO_IPADDRESS_V2 fallback), the
// INFO_OS_DETAILED header and key='value' string, and the disk lists
// (SetGuestDiskInfo JSON version 1 and the binary INFO_DISK_FREE_SPACE V0).
//
// Both the guest side (guestinfo) and the simulated VMX (vmxsim) use it:
// it does no I/O and holds no state. Every decoder takes untrusted bytes
// and returns an error, never panics, on anything malformed.
//
// # Keeping messages under 64 KiB
//
// The VMX refuses guest messages over 64 KiB. FitNicInfo trims a NicInfo
// to a byte budget in this order, stopping as soon as it fits:
//
//  1. routes, last first (IPv6 routes come after IPv4 ones);
//  2. DNS search suffixes, then DNS servers, last first;
//  3. IPv6 link-local addresses, from the last NIC backwards;
//  4. other addresses, from the last NIC backwards, last address first,
//     keeping each NIC's first address;
//  5. whole NICs, last first (the NIC list is ranked, so the VM's own
//     NICs come first and are kept longest).
//
// The disk list is trimmed the same way by FitDisks: last disk first.
package infoproto
