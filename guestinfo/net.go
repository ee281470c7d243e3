package guestinfo

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// Link is what the kernel says about one network interface.
type Link struct {
	Index       int
	Name        string
	Kind        string // IFLA_INFO_KIND; "" for a hardware driver
	MasterIndex int    // IFLA_MASTER; 0 when not enslaved
	MAC         net.HardwareAddr
	Up          bool // IFF_UP
	Loopback    bool // IFF_LOOPBACK
}

// Addr is one address of an interface.
type Addr struct {
	LinkIndex int
	Prefix    netip.Prefix
	Flags     uint32 // IFA_F_*
	// ValidLft is the valid lifetime in seconds; 0xffffffff (or 0 from a
	// source that does not know) means forever.
	ValidLft uint32
}

// Address flags (linux/if_addr.h) that guest info reads.
const (
	IFAFSecondary  = 0x01 // IFA_F_SECONDARY / IFA_F_TEMPORARY
	IFAFOptimistic = 0x04
	IFAFDadFailed  = 0x08
	IFAFDeprecated = 0x20
	IFAFTentative  = 0x40
	IFAFPermanent  = 0x80
)

// RouteFact is one route of the main table.
type RouteFact struct {
	LinkIndex int
	Dst       netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Gw        netip.Addr   // invalid when directly connected
	Metric    uint32
}

// NetSnapshot is one consistent view of the network configuration.
type NetSnapshot struct {
	Links  []Link
	Addrs  []Addr
	Routes []RouteFact
}

// NetSource takes snapshots; the netlink source is the real one, tests
// use fixtures.
type NetSource interface {
	Snapshot() (*NetSnapshot, error)
}

// NIC classes, in rank order.
const (
	classPrimary  = iota // primary-nics
	classOwn             // the VM's own NIC
	classStacked         // vlan, bond, macvlan ... on top of the VM's NICs
	classLow             // low-priority-nics
	classExcluded        // never reported
)

// vmwareOUIs are the MAC prefixes VMware assigns to virtual NICs.
var vmwareOUIs = [][3]byte{{0x00, 0x50, 0x56}, {0x00, 0x0c, 0x29}, {0x00, 0x05, 0x69}}

// IsVMwareMAC reports whether mac carries a VMware OUI.
func IsVMwareMAC(mac net.HardwareAddr) bool {
	if len(mac) != 6 {
		return false
	}
	for _, o := range vmwareOUIs {
		if mac[0] == o[0] && mac[1] == o[1] && mac[2] == o[2] {
			return true
		}
	}
	return false
}

// containerKinds are link kinds that belong to containers, overlays and
// tunnels rather than to the VM's virtual hardware.
var containerKinds = map[string]bool{
	"veth": true, "bridge": true, "vxlan": true, "geneve": true, "tun": true, "tap": true,
	"dummy": true, "openvswitch": true, "wireguard": true, "ipip": true, "gre": true,
	"gretap": true, "ip6gre": true, "ip6gretap": true, "sit": true, "ip6tnl": true,
	"vti": true, "vti6": true, "xfrm": true, "nlmon": true, "ifb": true, "bareudp": true,
	"gtp": true, "batadv": true, "netdevsim": true, "vcan": true, "vxcan": true,
	"erspan": true, "ip6erspan": true, "wwan": true, "tuntap": true, "netkit": true,
}

// portMasters are master kinds whose ports carry no addresses of their own.
var portMasters = map[string]bool{"bridge": true, "openvswitch": true, "bond": true, "team": true}

// RankedLink is a link with its classification.
type RankedLink struct {
	Link
	Class        int
	DefaultRoute bool
	Why          string // for debugging: why this class
}

// Rank classifies and orders snap's links as the package documentation
// describes. Excluded links are returned last, with Class classExcluded.
func Rank(snap *NetSnapshot, cfg *Config) []RankedLink {
	byIndex := make(map[int]*Link, len(snap.Links))
	for i := range snap.Links {
		byIndex[snap.Links[i].Index] = &snap.Links[i]
	}
	defaults := map[int]bool{}
	for _, r := range snap.Routes {
		if r.Dst.Bits() == 0 {
			defaults[r.LinkIndex] = true
		}
	}
	exclude := cfg.exclude()
	out := make([]RankedLink, 0, len(snap.Links))
	for _, l := range snap.Links {
		rl := RankedLink{Link: l, DefaultRoute: defaults[l.Index]}
		rl.Class, rl.Why = classify(&l, byIndex, rl.DefaultRoute, cfg, exclude)
		out = append(out, rl)
	}
	slices.SortStableFunc(out, func(a, b RankedLink) int {
		if c := cmp.Compare(a.Class, b.Class); c != 0 {
			return c
		}
		if a.DefaultRoute != b.DefaultRoute {
			if a.DefaultRoute {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

func classify(l *Link, byIndex map[int]*Link, defRoute bool, cfg *Config, exclude []string) (int, string) {
	switch {
	case l.Loopback:
		return classExcluded, "loopback"
	case !l.Up:
		return classExcluded, "down"
	case len(l.MAC) != 6:
		return classExcluded, "no ethernet address"
	case matchAny(exclude, l.Name):
		return classExcluded, "exclude-nics"
	}
	if m := byIndex[l.MasterIndex]; l.MasterIndex != 0 && m != nil && portMasters[m.Kind] {
		return classExcluded, "port of " + m.Kind + " " + m.Name
	}
	switch {
	case matchAny(cfg.PrimaryNICs, l.Name):
		return classPrimary, "primary-nics"
	case matchAny(cfg.LowPriorityNICs, l.Name):
		return classLow, "low-priority-nics"
	case IsVMwareMAC(l.MAC):
		return classOwn, "VMware MAC"
	case defRoute:
		return classOwn, "default route"
	case l.Kind == "":
		return classOwn, "hardware"
	case containerKinds[l.Kind]:
		return classExcluded, l.Kind
	default:
		return classStacked, l.Kind
	}
}

// NicResult is a built NicInfo with what was left out.
type NicResult struct {
	Info *infoproto.NicInfo
	// Names are the reported interfaces, in NIC order.
	Names []string
	// OverLimit counts reportable NICs dropped by the 16-NIC cap.
	OverLimit int
}

// BuildNicInfo builds the NicInfo from a snapshot: ranked NICs (at most
// 16), their addresses, the routes through them and the DNS configuration.
func BuildNicInfo(snap *NetSnapshot, cfg *Config, dns *infoproto.DNSConfig) NicResult {
	ranked := Rank(snap, cfg)
	var res NicResult
	res.Info = &infoproto.NicInfo{DNS: dns}
	pos := map[int]uint32{}
	for _, rl := range ranked {
		if rl.Class == classExcluded {
			break
		}
		if len(res.Info.NICs) == infoproto.MaxNICs {
			res.OverLimit++
			continue
		}
		pos[rl.Index] = uint32(len(res.Info.NICs))
		res.Info.NICs = append(res.Info.NICs, infoproto.NIC{MAC: rl.MAC.String()})
		res.Names = append(res.Names, rl.Name)
	}
	// Addresses: IPv4 in kernel order, then IPv6 with link-local last.
	for pass := range 3 {
		for _, a := range snap.Addrs {
			i, ok := pos[a.LinkIndex]
			if !ok || !reportable(a.Prefix.Addr()) || addrPass(a.Prefix.Addr()) != pass {
				continue
			}
			nic := &res.Info.NICs[i]
			if len(nic.IPs) < infoproto.MaxIPs {
				nic.IPs = append(nic.IPs, entry(a))
			}
		}
	}
	res.Info.Routes = buildRoutes(snap, pos, cfg)
	return res
}

func addrPass(a netip.Addr) int {
	switch {
	case a.Is4():
		return 0
	case a.IsLinkLocalUnicast():
		return 2
	default:
		return 1
	}
}

// reportable drops what vmtoolsd drops: IPv4 127/8 and IPv6 ::1.
func reportable(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsUnspecified()
}

// entry converts an address. Status: IPv4 preferred as vmtoolsd; IPv6 from
// the kernel's flags (vmtoolsd always says unknown). Origin (never filled
// by vmtoolsd, open-vm-tools#694): link-local is linklayer, temporary is
// random, a finite lifetime is DHCP (IPv4) or linklayer/SLAAC (IPv6), a
// permanent address is manual.
func entry(a Addr) infoproto.IPEntry {
	addr := a.Prefix.Addr()
	e := infoproto.IPEntry{Addr: addr, PrefixLen: uint32(a.Prefix.Bits()), Status: infoproto.StatusPreferred}
	if addr.Is6() {
		switch {
		case a.Flags&IFAFDadFailed != 0:
			e.Status = 7 // duplicate
		case a.Flags&IFAFTentative != 0:
			e.Status = 6 // tentative
		case a.Flags&IFAFOptimistic != 0:
			e.Status = 8 // optimistic
		case a.Flags&IFAFDeprecated != 0:
			e.Status = 2 // deprecated
		}
	}
	forever := a.ValidLft == 0 || a.ValidLft == 0xffffffff
	switch {
	case addr.Is6() && addr.IsLinkLocalUnicast():
		e.Origin = infoproto.OriginLinkLayer
	case addr.Is6() && a.Flags&IFAFSecondary != 0:
		e.Origin = infoproto.OriginRandom
	case !forever && addr.Is4():
		e.Origin = infoproto.OriginDHCP
	case !forever:
		e.Origin = infoproto.OriginLinkLayer
	case a.Flags&IFAFPermanent != 0:
		e.Origin = infoproto.OriginManual
	}
	return e
}

func buildRoutes(snap *NetSnapshot, pos map[int]uint32, cfg *Config) []infoproto.Route {
	var out []infoproto.Route
	caps := [2]int{routeCap(cfg.MaxIPv4Routes), routeCap(cfg.MaxIPv6Routes)}
	for fam := range 2 {
		n := 0
		for _, r := range snap.Routes {
			if (fam == 0) != r.Dst.Addr().Is4() {
				continue
			}
			i, ok := pos[r.LinkIndex]
			if !ok || n >= caps[fam] || len(out) >= infoproto.MaxRoutes {
				continue
			}
			out = append(out, infoproto.Route{
				Dest:      r.Dst.Addr(),
				PrefixLen: uint32(r.Dst.Bits()),
				NextHop:   r.Gw,
				IfIndex:   i,
				Metric:    r.Metric,
			})
			n++
		}
	}
	return out
}

// PrimaryIP answers broadcastIP with the same ranking: the first IPv4
// address (not 127/8, not 0.0.0.0) of the best-ranked reported NIC that
// has one; failing that the first IPv6 address that is not loopback,
// link-local, site-local, unique-local or unspecified; else "".
func PrimaryIP(snap *NetSnapshot, cfg *Config) string {
	ranked := Rank(snap, cfg)
	for pass := range 2 {
		for _, rl := range ranked {
			if rl.Class == classExcluded {
				break
			}
			for _, a := range snap.Addrs {
				if a.LinkIndex != rl.Index {
					continue
				}
				ip := a.Prefix.Addr()
				if pass == 0 && ip.Is4() && !ip.IsLoopback() && !ip.IsUnspecified() {
					return ip.String()
				}
				if pass == 1 && ip.Is6() && globalV6(ip) {
					return ip.String()
				}
			}
		}
	}
	return ""
}

func globalV6(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsPrivate() || ip.Is4In6() {
		return false
	}
	b := ip.As16()
	return !(b[0] == 0xfe && b[1]&0xc0 == 0xc0) // fec0::/10 site-local
}

// Explain returns one line per link saying how it was classified, for
// debug logs and tests.
func Explain(snap *NetSnapshot, cfg *Config) string {
	var sb strings.Builder
	names := [...]string{"primary", "own", "stacked", "low", "excluded"}
	for _, rl := range Rank(snap, cfg) {
		sb.WriteString(rl.Name + ": " + names[rl.Class] + " (" + rl.Why + ")\n")
	}
	return sb.String()
}
