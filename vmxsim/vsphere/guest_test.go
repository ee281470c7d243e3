package vsphere

import (
	"encoding/hex"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestGuestID(t *testing.T) {
	for _, tt := range []struct{ short, id, full string }{
		{"debian12-64", "debian12_64Guest", "Debian GNU/Linux 12 (64-bit)"},
		{"debian11", "debian11Guest", "Debian GNU/Linux 11 (32-bit)"},
		{"arm-ubuntu-64", "ubuntu64Guest", "Ubuntu Linux (64-bit)"},
		{"vmware-photon-64", "vmwarePhoton64Guest", "VMware Photon OS (64-bit)"},
		{"other5xlinux-64", "other5xLinux64Guest", "Other 5.x or later Linux (64-bit)"},
		{"rhel9-64", "rhel9_64Guest", "Red Hat Enterprise Linux 9 (64-bit)"},
		{"oraclelinux9-64", "oracleLinux9_64Guest", "Oracle Linux 9 (64-bit)"},
		{"almaLinux-64", "almalinux_64Guest", "AlmaLinux (64-bit)"},
		{"rockyLinux-64", "rockylinux_64Guest", "Rocky Linux (64-bit)"},
		{"amazonlinux2-64", "amazonlinux2_64Guest", "Amazon Linux 2 (64-bit)"},
		{"Fedora-64", "fedora64Guest", "Red Hat Fedora (64-bit)"},
		{"sles15-64", "sles15_64Guest", "SUSE Linux Enterprise 15 (64-bit)"},
		{"flatcar-64", "otherLinux64Guest", "Other Linux (64-bit)"}, // not a vSphere ID
		{"Gentoo", "otherLinuxGuest", "Other Linux (32-bit)"},
		{"", "", ""},
	} {
		id := GuestID(tt.short)
		if id != tt.id {
			t.Errorf("GuestID(%q) = %q, want %q", tt.short, id, tt.id)
			continue
		}
		if id == "" {
			continue
		}
		if full := GuestFullName(id, "reported"); full != tt.full {
			t.Errorf("GuestFullName(%q) = %q, want %q", id, full, tt.full)
		}
	}
	if got := GuestFullName("centos64Guest", "Linux 3.10 CentOS 5"); got != "Linux 3.10 CentOS 5" {
		t.Errorf("an ID without a name pattern shows the reported name, got %q", got)
	}
}

// TestVSphereGuestMirror feeds guest info to the core and reads it back
// through the vSphere API as a client would: guest.net tied to the VM's
// virtual NIC by MAC (an unknown MAC gets deviceConfigId -1), every
// address with its prefix and state, routes and DNS in guest.ipStack, the
// host name, guest ID, full name and detailed data, the disks, and the
// summary.guest copies.
func TestVSphereGuestMirror(t *testing.T) {
	c := newCore(t)
	ctx := t.Context()
	v, err := New(ctx, c, Options{Addr: "127.0.0.1:0", NICs: []string{"00:50:56:AA:BB:01"}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	n, err := infoproto.DecodeNicInfo(goldenNicInfo(t))
	if err != nil {
		t.Fatal(err)
	}
	n.NICs = append(n.NICs, infoproto.NIC{MAC: "02:42:ac:11:00:01", IPs: []infoproto.IPEntry{{Addr: mustAddr("192.0.2.1"), PrefixLen: 24, Origin: infoproto.OriginManual, Status: infoproto.StatusPreferred}}})
	payload, err := infoproto.EncodeNicInfo(n)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../guestinfo/infoproto/testdata/diskinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range [][]byte{
		infoproto.BinaryMessage(infoproto.InfoIPAddressV3, payload),
		infoproto.TextMessage(infoproto.InfoDNSName, "vm1"),
		infoproto.BinaryMessage(infoproto.InfoOSDetailed, infoproto.EncodeOSDetailed(infoproto.OSDetailed{
			ShortName: "debian12-64", FullName: "Linux 6.1 Debian GNU/Linux 12 (bookworm)", Detailed: "architecture='X86' bitness='64'",
		})),
		infoproto.DiskInfoMessage(doc),
	} {
		if r := string(c.RPCI(ctx, vmxsim.Caller{}, req)); r != "1 " {
			t.Fatalf("%.30q: %q", req, r)
		}
	}
	v.mirror()

	client, err := govmomi.NewClient(ctx, v.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	var vm mo.VirtualMachine
	if err := property.DefaultCollector(client.Client).RetrieveOne(ctx, v.VM(), []string{"guest", "summary.guest", "config.hardware.device"}, &vm); err != nil {
		t.Fatal(err)
	}
	g := vm.Guest
	if g.IpAddress != "198.51.100.10" || g.HostName != "vm1" || g.GuestId != "debian12_64Guest" || g.GuestFamily != "linuxGuest" ||
		g.GuestFullName != "Debian GNU/Linux 12 (64-bit)" || g.GuestDetailedData != "architecture='X86' bitness='64'" {
		t.Errorf("guest: ip %q host %q id %q family %q full %q detailed %q", g.IpAddress, g.HostName, g.GuestId, g.GuestFamily, g.GuestFullName, g.GuestDetailedData)
	}
	if s := vm.Summary.Guest; s == nil || s.IpAddress != "198.51.100.10" || s.HostName != "vm1" || s.GuestId != "debian12_64Guest" || s.GuestFullName != g.GuestFullName {
		t.Errorf("summary.guest %+v", s)
	}

	var key int32
	for _, d := range vm.Config.Hardware.Device {
		if card, ok := d.(types.BaseVirtualEthernetCard); ok && card.GetVirtualEthernetCard().MacAddress == "00:50:56:aa:bb:01" {
			key = card.GetVirtualEthernetCard().Key
		}
	}
	if key == 0 {
		t.Fatal("the VM has no virtual NIC 00:50:56:aa:bb:01")
	}
	if len(g.Net) != 2 {
		t.Fatalf("guest.net: %+v", g.Net)
	}
	eth0, other := g.Net[0], g.Net[1]
	if eth0.MacAddress != "00:50:56:aa:bb:01" || eth0.DeviceConfigId != key || eth0.Network == "" || !eth0.Connected {
		t.Errorf("eth0: mac %q device %d (want %d) network %q connected %v", eth0.MacAddress, eth0.DeviceConfigId, key, eth0.Network, eth0.Connected)
	}
	if len(eth0.IpAddress) != 2 || eth0.IpAddress[0] != "198.51.100.10" || eth0.IpAddress[1] != "2001:db8::10" || eth0.IpConfig == nil {
		t.Fatalf("eth0 addresses %q %+v", eth0.IpAddress, eth0.IpConfig)
	}
	want := []types.NetIpConfigInfoIpAddress{
		{IpAddress: "198.51.100.10", PrefixLength: 24, State: "preferred"},
		{IpAddress: "2001:db8::10", PrefixLength: 64, State: "unknown"},
	}
	for i, a := range eth0.IpConfig.IpAddress {
		if a.IpAddress != want[i].IpAddress || a.PrefixLength != want[i].PrefixLength || a.State != want[i].State || a.Origin != "" {
			t.Errorf("ipConfig[%d] = %+v, want %+v", i, a, want[i])
		}
	}
	if other.DeviceConfigId != -1 || other.Network != "" || other.IpConfig.IpAddress[0].Origin != "manual" {
		t.Errorf("a NIC without a virtual card: %+v", other)
	}

	if len(g.IpStack) != 1 || g.IpStack[0].IpRouteConfig == nil || g.IpStack[0].DnsConfig == nil {
		t.Fatalf("guest.ipStack %+v", g.IpStack)
	}
	routes := g.IpStack[0].IpRouteConfig.IpRoute
	if len(routes) != 1 || routes[0].Network != "0.0.0.0" || routes[0].PrefixLength != 0 ||
		routes[0].Gateway.IpAddress != "198.51.100.1" || routes[0].Gateway.Device != "0" {
		t.Errorf("routes %+v", routes)
	}
	dns := g.IpStack[0].DnsConfig
	if dns.HostName != "vm1" || dns.DomainName != "example.test" || len(dns.IpAddress) != 1 || dns.IpAddress[0] != "198.51.100.53" ||
		len(dns.SearchDomain) != 1 || dns.SearchDomain[0] != "example.test" {
		t.Errorf("dns %+v", dns)
	}
	if len(g.Disk) != 2 || g.Disk[0].DiskPath != "/" || g.Disk[0].Capacity != 4096 || g.Disk[0].FreeSpace != 1000 || g.Disk[0].FilesystemType != "ext4" {
		t.Errorf("guest.disk %+v", g.Disk)
	}

	// Power off: the core forgets the guest, and so does vSphere.
	c.SetPowerState(vmxsim.PoweredOff)
	v.mirror()
	vm = mo.VirtualMachine{}
	if err := property.DefaultCollector(client.Client).RetrieveOne(ctx, v.VM(), []string{"guest"}, &vm); err != nil {
		t.Fatal(err)
	}
	if vm.Guest.IpAddress != "" || len(vm.Guest.Net) != 0 || vm.Guest.GuestId != "" {
		t.Errorf("after power-off: ip %q net %d id %q", vm.Guest.IpAddress, len(vm.Guest.Net), vm.Guest.GuestId)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newCore returns a VMX core for the front end to mirror.
func newCore(t *testing.T) *vmxsim.Core {
	t.Helper()
	c, err := vmxsim.New(vmxsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// goldenNicInfo reads the hand-built vector shared with the codec tests.
func goldenNicInfo(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../guestinfo/infoproto/testdata/nicinfo-v3-basic.hex")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		line, _, _ = strings.Cut(line, "#")
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPeerGuestInfoMirrored: what Debian's vmtoolsd sent in the namespace
// scene (golden vectors of testdata/peer) is mirrored to vSphere as
// vCenter shows it.
func TestPeerGuestInfoMirrored(t *testing.T) {
	c := newCore(t)
	disk, err := os.ReadFile("../../testdata/peer/guestinfo-diskinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	peer := "../../../testdata/peer/" // relative to testdata/
	nic, osd := testutil.ReadHex(t, peer+"guestinfo-nicinfo-v3.hex"), testutil.ReadHex(t, peer+"guestinfo-osdetailed.hex")
	for _, req := range [][]byte{
		infoproto.BinaryMessage(infoproto.InfoIPAddressV3, nic),
		infoproto.BinaryMessage(infoproto.InfoOSDetailed, osd),
		infoproto.DiskInfoMessage(disk),
	} {
		if r := string(c.RPCI(t.Context(), vmxsim.Caller{Transport: "backdoor"}, req)); r != "1 " {
			t.Fatalf("%.30q: %q", req, r)
		}
	}
	props := map[string]any{}
	for _, pc := range (&FrontEnd{}).guestMirror(c.State()) {
		props[pc.Name] = pc.Val
	}
	if props["guest.guestId"] != "debian12_64Guest" || props["guest.guestFullName"] != "Debian GNU/Linux 12 (64-bit)" || props["guest.ipAddress"] != "198.51.100.10" {
		t.Errorf("mirrored %v %v %v", props["guest.guestId"], props["guest.guestFullName"], props["guest.ipAddress"])
	}
	net := props["guest.net"].([]types.GuestNicInfo)
	if len(net) != 3 || net[0].DeviceConfigId != -1 || len(net[0].IpConfig.IpAddress) != 4 || net[0].IpConfig.IpAddress[3].State != "unknown" {
		t.Errorf("guest.net %+v", net)
	}
}
