package vsphere

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// vmNIC is one virtual NIC of the mirrored VM.
type vmNIC struct {
	key     int32
	network string
}

// addNICs gives the VM one vmxnet3 card per MAC (a manual address, as an
// administrator sets ethernetN.address), on the datacenter's default
// network, and returns the cards by MAC. guest.net entries whose MAC
// matches a card carry its device key and network, as vCenter's do.
func addNICs(ctx context.Context, c *vim25.Client, ref types.ManagedObjectReference, macs []string) (map[string]vmNIC, error) {
	out := map[string]vmNIC{}
	if len(macs) == 0 {
		return out, nil
	}
	finder := find.NewFinder(c)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return nil, err
	}
	finder.SetDatacenter(dc)
	netRef, err := finder.DefaultNetwork(ctx)
	if err != nil {
		return nil, err
	}
	backing, err := netRef.EthernetCardBackingInfo(ctx)
	if err != nil {
		return nil, err
	}
	vm := object.NewVirtualMachine(c, ref)
	var devices object.VirtualDeviceList
	for _, m := range macs {
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("NIC MAC %q: not an Ethernet address", m)
		}
		d, err := devices.CreateEthernetCard("vmxnet3", backing)
		if err != nil {
			return nil, err
		}
		card := d.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
		card.AddressType = string(types.VirtualEthernetCardMacTypeManual)
		card.MacAddress = hw.String()
		devices = append(devices, d)
	}
	if err := vm.AddDevice(ctx, devices...); err != nil {
		return nil, err
	}
	all, err := vm.Device(ctx)
	if err != nil {
		return nil, err
	}
	name := netRef.GetInventoryPath()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	for _, d := range all.SelectByType((*types.VirtualEthernetCard)(nil)) {
		card := d.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
		out[strings.ToLower(card.MacAddress)] = vmNIC{key: card.Key, network: name}
	}
	return out, nil
}

// guestMirror maps the decoded guest info to the VM's guest properties as
// vCenter shows them: guest.ipAddress, guest.hostName, guest.net (one
// GuestNicInfo per reported NIC, with every address in ipAddress and
// ipConfig), guest.ipStack (routes and DNS), guest.guestId,
// guest.guestFamily, guest.guestFullName, guest.guestDetailedData,
// guest.disk, and the summary.guest fields clients read. Before the guest
// reports, and after the VM powers off, they are empty, as on vCenter.
func (v *FrontEnd) guestMirror(s vmxsim.State) []types.PropertyChange {
	g := &s.Guest
	id := GuestID(g.OSShortName)
	family, full := "", ""
	if id != "" {
		family = string(types.VirtualMachineGuestOsFamilyLinuxGuest)
		full = GuestFullName(id, g.OSFullName)
	}
	return []types.PropertyChange{
		{Name: "guest.ipAddress", Val: g.IPAddress},
		{Name: "summary.guest.ipAddress", Val: g.IPAddress},
		{Name: "guest.hostName", Val: g.HostName},
		{Name: "summary.guest.hostName", Val: g.HostName},
		{Name: "guest.guestId", Val: id},
		{Name: "summary.guest.guestId", Val: id},
		{Name: "guest.guestFamily", Val: family},
		{Name: "guest.guestFullName", Val: full},
		{Name: "summary.guest.guestFullName", Val: full},
		{Name: "guest.guestDetailedData", Val: g.Detailed},
		{Name: "guest.net", Val: v.guestNet(g)},
		{Name: "guest.ipStack", Val: guestIPStack(g)},
		{Name: "guest.disk", Val: guestDiskInfo(g)},
	}
}

func (v *FrontEnd) guestNet(g *vmxsim.GuestState) []types.GuestNicInfo {
	out := []types.GuestNicInfo{}
	for _, n := range g.NICs {
		info := types.GuestNicInfo{
			MacAddress:     n.MAC,
			Connected:      true,
			DeviceConfigId: -1, // no virtual NIC has this MAC
			IpAddress:      []string{},
			IpConfig:       &types.NetIpConfigInfo{},
		}
		if d, ok := v.nics[strings.ToLower(n.MAC)]; ok {
			info.DeviceConfigId, info.Network = d.key, d.network
		}
		for _, ip := range n.IPConfig {
			info.IpAddress = append(info.IpAddress, ip.IP)
			info.IpConfig.IpAddress = append(info.IpConfig.IpAddress, types.NetIpConfigInfoIpAddress{
				IpAddress:    ip.IP,
				PrefixLength: int32(ip.Prefix),
				Origin:       ip.Origin,
				State:        ip.State,
			})
		}
		out = append(out, info)
	}
	return out
}

func guestIPStack(g *vmxsim.GuestState) []types.GuestStackInfo {
	if len(g.Routes) == 0 && g.DNS == nil {
		return []types.GuestStackInfo{}
	}
	st := types.GuestStackInfo{IpRouteConfig: &types.NetIpRouteConfigInfo{}}
	for _, r := range g.Routes {
		addr, bits, _ := strings.Cut(r.Dest, "/")
		n, _ := strconv.Atoi(bits)
		st.IpRouteConfig.IpRoute = append(st.IpRouteConfig.IpRoute, types.NetIpRouteConfigInfoIpRoute{
			Network:      addr,
			PrefixLength: int32(n),
			Gateway:      types.NetIpRouteConfigInfoGateway{IpAddress: r.Gateway, Device: strconv.Itoa(r.NIC)},
		})
	}
	if d := g.DNS; d != nil {
		st.DnsConfig = &types.NetDnsConfigInfo{
			HostName:     d.HostName,
			DomainName:   d.DomainName,
			IpAddress:    d.Servers,
			SearchDomain: d.Search,
		}
	}
	return []types.GuestStackInfo{st}
}

func guestDiskInfo(g *vmxsim.GuestState) []types.GuestDiskInfo {
	out := []types.GuestDiskInfo{}
	for _, d := range g.Disks {
		out = append(out, types.GuestDiskInfo{
			DiskPath:       d.Name,
			Capacity:       clampInt64(d.Size),
			FreeSpace:      clampInt64(d.Free),
			FilesystemType: d.FSType,
		})
	}
	return out
}

func clampInt64(u uint64) int64 {
	if u > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(u)
}

// GuestID converts a guest's short OS name (the VMX's guestOS value, e.g.
// "debian12-64", "arm-ubuntu-64", "vmware-photon-64", "other5xlinux-64")
// to the vSphere guest identifier it stands for ("debian12_64Guest",
// "ubuntu64Guest", "vmwarePhoton64Guest", "other5xLinux64Guest"), by
// matching against vSphere's list with case, '-' and '_' ignored. A name
// vSphere does not know is shown as otherLinux64Guest (otherLinuxGuest
// for 32-bit); "" stays "".
func GuestID(short string) string {
	if short == "" {
		return ""
	}
	s := strings.ToLower(strings.TrimPrefix(strings.ToLower(short), "arm-"))
	if id, ok := guestIDs()[idFolder.Replace(s)]; ok {
		return id
	}
	if strings.HasSuffix(s, "-64") {
		return string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest)
	}
	return string(types.VirtualMachineGuestOsIdentifierOtherLinuxGuest)
}

// idFolder drops what GuestID ignores besides case.
var idFolder = strings.NewReplacer("-", "", "_", "")

// guestIDs maps vSphere's guest identifiers, folded as GuestID compares
// them, to themselves; built once (the mirror asks for every VM at every
// interval).
var guestIDs = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, id := range types.VirtualMachineGuestOsIdentifier("").Values() {
		n := idFolder.Replace(strings.ToLower(strings.TrimSuffix(string(id), "Guest")))
		if _, dup := m[n]; !dup {
			m[n] = string(id) // the first in vSphere's order, as the loop was
		}
	}
	return m
})

// GuestFullName is vSphere's display name of a Linux guest identifier
// (guest.guestFullName, e.g. "Debian GNU/Linux 12 (64-bit)"), for the
// families whose names follow a pattern; for others it is the name the
// guest reported.
func GuestFullName(id, reported string) string {
	base, bits := strings.TrimSuffix(id, "Guest"), "32-bit"
	if b, ok := strings.CutSuffix(base, "64"); ok {
		base, bits = strings.TrimSuffix(b, "_"), "64-bit"
	}
	name := ""
	for _, f := range []struct{ prefix, name string }{
		{"debian", "Debian GNU/Linux %s"},
		{"rhel", "Red Hat Enterprise Linux %s"},
		{"centos", "CentOS %s"},
		{"sles", "SUSE Linux Enterprise %s"},
		{"oracleLinux", "Oracle Linux %s"},
		{"amazonlinux", "Amazon Linux %s"},
		{"asianux", "Asianux %s"},
	} {
		if v, ok := strings.CutPrefix(base, f.prefix); ok && v != "" && v[0] >= '0' && v[0] <= '9' {
			name = fmt.Sprintf(f.name, v)
			break
		}
	}
	if v, ok := strings.CutPrefix(base, "other"); ok && strings.HasSuffix(v, "xLinux") {
		name = "Other " + strings.TrimSuffix(v, "xLinux") + ".x or later Linux"
	}
	if name == "" {
		name = map[string]string{
			"ubuntu":       "Ubuntu Linux",
			"vmwarePhoton": "VMware Photon OS",
			"fedora":       "Red Hat Fedora",
			"opensuse":     "SUSE openSUSE",
			"rockylinux":   "Rocky Linux",
			"almalinux":    "AlmaLinux",
			"otherLinux":   "Other Linux",
		}[base]
	}
	if name == "" {
		return reported
	}
	return name + " (" + bits + ")"
}
