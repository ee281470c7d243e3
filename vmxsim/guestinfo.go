package vmxsim

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// GuestNIC is one reported NIC, as vSphere's guest.net shows it.
type GuestNIC struct {
	MAC string   `json:"mac"`
	IPs []string `json:"ips"` // "addr/prefix"
	// IPConfig details IPs, in the same order (guest.net[].ipConfig).
	IPConfig []GuestIP `json:"ipConfig,omitempty"`
}

// GuestIP is one address with what the guest said about it, in vSphere's
// words (NetIpConfigInfoIpAddress).
type GuestIP struct {
	IP     string `json:"ip"`
	Prefix int    `json:"prefix"`
	// Origin is other, manual, dhcp, linklayer or random; "" when the
	// guest did not say (open-vm-tools never does).
	Origin string `json:"origin,omitempty"`
	// State is preferred, deprecated, invalid, inaccessible, unknown,
	// tentative or duplicate; "" when the guest did not say.
	State string `json:"state,omitempty"`
}

// ipOrigins and ipStates name IpAddressOrigin and IpAddressStatus values
// as vSphere does. vSphere has no "optimistic" state: an optimistic
// address is usable, so it shows as preferred.
var (
	ipOrigins = map[uint32]string{1: "other", 2: "manual", 3: "other", 4: "dhcp", 5: "linklayer", 6: "random"}
	ipStates  = map[uint32]string{1: "preferred", 2: "deprecated", 3: "invalid", 4: "inaccessible", 5: "unknown", 6: "tentative", 7: "duplicate", 8: "preferred"}
)

// GuestRoute is one reported route (guest.ipStack.ipRouteConfig).
type GuestRoute struct {
	Dest    string `json:"dest"` // "addr/prefix"
	Gateway string `json:"gateway,omitempty"`
	NIC     int    `json:"nic"` // index into nics
	Metric  uint32 `json:"metric"`
}

// GuestDNS is the reported DNS configuration (guest.ipStack.dnsConfig).
type GuestDNS struct {
	HostName   string   `json:"hostName,omitempty"`
	DomainName string   `json:"domainName,omitempty"`
	Servers    []string `json:"servers,omitempty"`
	Search     []string `json:"search,omitempty"`
}

// GuestDisk is one reported file system (guest.disk).
type GuestDisk struct {
	Name    string   `json:"name"`
	FSType  string   `json:"fstype,omitempty"`
	Size    uint64   `json:"size"`
	Free    uint64   `json:"free"`
	Devices []string `json:"devices,omitempty"`
}

// decodeGuestInfo fills the decoded fields of g from the raw payloads.
// Preconditions: c.mu is held.
func (c *Core) decodeGuestInfo(g *GuestState) {
	g.NicInfoUpdates = c.nicUpdates
	if raw, ok := c.guestInfoRaw[infoproto.InfoOSDetailed]; ok {
		if d, err := infoproto.DecodeOSDetailed(raw); err == nil {
			g.OSShortName, g.OSFullName, g.Detailed = d.ShortName, d.FullName, d.Detailed
		}
	}
	for _, typ := range []int{infoproto.InfoIPAddressV3, infoproto.InfoIPAddressV2} {
		raw, ok := c.guestInfoRaw[typ]
		if !ok {
			continue
		}
		n, err := infoproto.DecodeNicInfo(raw)
		if err != nil {
			continue
		}
		g.NicInfoType = typ
		fillNet(g, n)
		break
	}
	if c.diskInfoRaw != nil {
		if disks, err := infoproto.DecodeDiskInfoV1(c.diskInfoRaw); err == nil {
			g.Disks = guestDisks(disks)
		}
	} else if raw, ok := c.guestInfoRaw[infoproto.InfoDiskFreeSpace]; ok {
		if disks, err := infoproto.DecodeDiskInfoV0(raw); err == nil {
			g.Disks = guestDisks(disks)
		}
	}
}

func guestDisks(disks []infoproto.Disk) []GuestDisk {
	out := make([]GuestDisk, 0, len(disks))
	for _, d := range disks {
		out = append(out, GuestDisk{Name: d.Name, FSType: d.FSType, Size: d.Size, Free: d.Free, Devices: d.Devices})
	}
	return out
}

func fillNet(g *GuestState, n *infoproto.NicInfo) {
	for _, nic := range n.NICs {
		gn := GuestNIC{MAC: nic.MAC, IPs: []string{}}
		for _, e := range nic.IPs {
			gn.IPs = append(gn.IPs, e.String())
			gn.IPConfig = append(gn.IPConfig, GuestIP{IP: e.Addr.String(), Prefix: int(e.PrefixLen), Origin: ipOrigins[e.Origin], State: ipStates[e.Status]})
		}
		g.NICs = append(g.NICs, gn)
	}
	for _, r := range n.Routes {
		gr := GuestRoute{Dest: fmt.Sprintf("%s/%d", r.Dest, r.PrefixLen), NIC: int(r.IfIndex), Metric: r.Metric}
		if r.NextHop.IsValid() {
			gr.Gateway = r.NextHop.String()
		}
		g.Routes = append(g.Routes, gr)
	}
	if d := n.DNS; d != nil {
		gd := &GuestDNS{Search: d.Suffixes}
		if d.HostName != nil {
			gd.HostName = *d.HostName
		}
		if d.DomainName != nil {
			gd.DomainName = *d.DomainName
		}
		for _, s := range d.Servers {
			gd.Servers = append(gd.Servers, s.String())
		}
		g.DNS = gd
	}
	g.IPAddress = primaryIP(n)
}

// primaryIP is what vSphere shows as guest.ipAddress: the first IPv4
// address in NIC order, else the first IPv6 address that is not
// link-local.
func primaryIP(n *infoproto.NicInfo) string {
	for pass := range 2 {
		for _, nic := range n.NICs {
			for _, e := range nic.IPs {
				a := e.Addr
				if pass == 0 && a.Is4() && !a.IsLoopback() && !a.IsUnspecified() {
					return a.String()
				}
				if pass == 1 && a.Is6() && !a.IsLinkLocalUnicast() && !a.IsLoopback() && a != netip.IPv6Unspecified() {
					return a.String()
				}
			}
		}
	}
	return ""
}

// checkGuestInfo decodes a binary payload as the VMX parses it on
// receipt; a payload that does not decode is refused, so that the guest
// falls back as it would on a real host.
func checkGuestInfo(typ int, payload []byte) error {
	var err error
	switch typ {
	case infoproto.InfoIPAddressV2, infoproto.InfoIPAddressV3:
		_, err = infoproto.DecodeNicInfo(payload)
	case infoproto.InfoOSDetailed:
		_, err = infoproto.DecodeOSDetailed(payload)
	case infoproto.InfoDiskFreeSpace:
		_, err = infoproto.DecodeDiskInfoV0(payload)
	}
	return err
}

func (c *Core) rpciSetGuestDiskInfo(ctx context.Context, caller Caller, args []byte) []byte {
	if _, err := infoproto.DecodeDiskInfoV1(args); err != nil {
		c.lg.Warn("SetGuestDiskInfo refused", "err", err)
		return []byte("0 Invalid disk info")
	}
	c.mu.Lock()
	c.diskInfoRaw = append([]byte(nil), bytes.TrimRight(args, "\x00")...)
	delete(c.guestInfoRaw, infoproto.InfoDiskFreeSpace)
	c.mu.Unlock()
	c.changed()
	return []byte("1 ")
}

// clearGuestInfo forgets what the guest reported (at power-off).
func (c *Core) clearGuestInfo() {
	c.mu.Lock()
	clear(c.guestInfoRaw)
	c.diskInfoRaw = nil
	c.mu.Unlock()
	c.changed()
}
