// Package guestinfo owns what the guest tells the host about itself: the
// hostname, OS names and detailed data, NICs with their addresses, routes
// and DNS configuration, local file systems, and uptime. It collects them
// from the kernel and the file system (netlink for the network, /proc,
// /sys and /etc under an injectable root for the rest), ranks NICs by
// kernel facts, and builds the infoproto structures that go on the wire.
// The Reporter in guestinfo/report sends them.
//
// # NIC choice
//
// vSphere shows the NICs of the VM, so each interface is classified by
// what the kernel knows about it, not by its name (open-vm-tools issues
// #93, #100, #175, #373):
//
//   - never reported: loopback, interfaces that are down, interfaces
//     without a 6-byte hardware address, ports enslaved to a bridge or an
//     Open vSwitch (a container's side of the host), and names matching
//     exclude-nics;
//   - the VM's own NICs, ranked first: a VMware OUI MAC (00:50:56,
//     00:0c:29, 00:05:69), or no link kind at all (a hardware driver such
//     as vmxnet3), or the owner of a default route; the default route's
//     owner comes first among them;
//   - stacked devices with a kind of their own (vlan, bond, team, macvlan,
//     ipvlan, ...) come next;
//   - container and overlay kinds (veth, bridge, vxlan, geneve, tun, tap,
//     dummy, openvswitch, wireguard, ipip, gre, sit, ...) are left out
//     unless their MAC is VMware's, they own a default route, or a pattern
//     of primary-nics or low-priority-nics names them.
//
// Names matching primary-nics are moved to the front and names matching
// low-priority-nics to the back, as open-vm-tools does. The 16-NIC cap is
// applied after ranking, so extra interfaces never push out the real NIC.
// PrimaryIP chooses broadcastIP's answer with the same ranking.
package guestinfo
