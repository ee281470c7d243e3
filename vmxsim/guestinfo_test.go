package vmxsim

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/internal/testutil"
)

// goldenNicInfo reads the hand-built vector shared with the codec tests.
func goldenNicInfo(t testing.TB) []byte {
	t.Helper()
	raw, err := os.ReadFile("../guestinfo/infoproto/testdata/nicinfo-v3-basic.hex")
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

func TestGuestInfoDecodedIntoState(t *testing.T) {
	c := newCore(t, Options{})
	ctx := t.Context()
	send := func(req []byte, want string) {
		t.Helper()
		if got := string(c.RPCI(ctx, Caller{}, req)); got != want {
			t.Fatalf("%.30q: reply %q, want %q", req, got, want)
		}
	}
	send(infoproto.BinaryMessage(infoproto.InfoIPAddressV3, goldenNicInfo(t)), "1 ")
	send(infoproto.TextMessage(infoproto.InfoDNSName, "vm1"), "1 ")
	send(infoproto.BinaryMessage(infoproto.InfoOSDetailed, infoproto.EncodeOSDetailed(infoproto.OSDetailed{
		ShortName: "vmware-photon-64", FullName: "Linux 6.1 VMware Photon OS", Detailed: "architecture='X86' bitness='64'",
	})), "1 ")
	doc, err := os.ReadFile("../guestinfo/infoproto/testdata/diskinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	send(infoproto.DiskInfoMessage(doc), "1 ")
	send(infoproto.TextMessage(infoproto.InfoUptime, "4242"), "1 ")

	g := c.State().Guest
	want := GuestState{
		HostName:  "vm1",
		IPAddress: "198.51.100.10",
		NICs: []GuestNIC{{MAC: "00:50:56:aa:bb:01", IPs: []string{"198.51.100.10/24", "2001:db8::10/64"}, IPConfig: []GuestIP{
			{IP: "198.51.100.10", Prefix: 24, State: "preferred"},
			{IP: "2001:db8::10", Prefix: 64, State: "unknown"},
		}}},
		Routes:      []GuestRoute{{Dest: "0.0.0.0/0", Gateway: "198.51.100.1"}},
		DNS:         &GuestDNS{HostName: "vm1", DomainName: "example.test", Servers: []string{"198.51.100.53"}, Search: []string{"example.test"}},
		OSFullName:  "Linux 6.1 VMware Photon OS",
		OSShortName: "vmware-photon-64",
		Detailed:    "architecture='X86' bitness='64'",
		Disks: []GuestDisk{
			{Name: "/", FSType: "ext4", Size: 4096, Free: 1000, Devices: []string{"scsi0:0"}},
			{Name: "/boot/efi", Size: 512, Free: 0},
		},
		Uptime:         4242,
		NicInfoType:    10,
		NicInfoUpdates: 1,
	}
	if !reflect.DeepEqual(g, want) {
		a, _ := json.MarshalIndent(g, "", " ")
		t.Fatalf("guest state:\n%s", a)
	}

	// The V2 fallback replaces V3; the V0 disk list replaces V1.
	n, _ := infoproto.DecodeNicInfo(goldenNicInfo(t))
	n.NICs[0].IPs = n.NICs[0].IPs[1:]
	v2, _ := infoproto.EncodeNicInfo(n)
	send(infoproto.BinaryMessage(infoproto.InfoIPAddressV2, v2), "1 ")
	send(infoproto.BinaryMessage(infoproto.InfoDiskFreeSpace, infoproto.EncodeDiskInfoV0([]infoproto.Disk{{Name: "/data", Size: 10, Free: 5}})), "1 ")
	g = c.State().Guest
	if g.NicInfoType != 9 || g.NicInfoUpdates != 2 || g.IPAddress != "2001:db8::10" || len(g.Disks) != 1 || g.Disks[0].Name != "/data" {
		t.Fatalf("fallbacks: %+v", g)
	}

	// Malformed payloads are refused, so the guest falls back.
	send(infoproto.BinaryMessage(infoproto.InfoIPAddressV3, []byte{0, 0, 0, 3, 0, 0}), "0 Invalid guest info")
	send(infoproto.BinaryMessage(infoproto.InfoOSDetailed, []byte("short")), "0 Invalid guest info")
	send([]byte("SetGuestDiskInfo {\"version\":\"9\"}\x00"), "0 Invalid disk info")
	send([]byte("SetGuestInfo  99 x"), "0 Invalid arguments")
	if g := c.State().Guest; g.NicInfoType != 9 || g.NicInfoUpdates != 2 {
		t.Fatalf("a refused payload replaced the stored one or was counted: %+v", g)
	}
}

// peerVectors reads the golden vectors captured from Debian's vmtoolsd
// (testdata/peer/README.md): NicInfo V3 and OS detailed payloads, and the
// SetGuestDiskInfo document.
func peerVectors(t testing.TB) (nic, osDetailed, disk []byte) {
	t.Helper()
	disk, err := os.ReadFile("../testdata/peer/guestinfo-diskinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	peer := "../../testdata/peer/" // relative to testdata/
	return testutil.ReadHex(t, peer+"guestinfo-nicinfo-v3.hex"), testutil.ReadHex(t, peer+"guestinfo-osdetailed.hex"), disk
}

// TestPeerGuestInfoDecoded: what Debian's vmtoolsd sent in the namespace
// scene is accepted and decoded into ctl state (vsphere's
// TestPeerGuestInfoMirrored checks the same state as vCenter shows it).
func TestPeerGuestInfoDecoded(t *testing.T) {
	c := newCore(t, Options{})
	nic, osd, disk := peerVectors(t)
	for _, req := range [][]byte{
		infoproto.BinaryMessage(infoproto.InfoIPAddressV3, nic),
		infoproto.BinaryMessage(infoproto.InfoOSDetailed, osd),
		infoproto.DiskInfoMessage(disk),
	} {
		if r := string(c.RPCI(t.Context(), Caller{Transport: "backdoor"}, req)); r != "1 " {
			t.Fatalf("%.30q: %q", req, r)
		}
	}
	g := c.State().Guest
	if g.IPAddress != "198.51.100.10" || g.NicInfoType != infoproto.InfoIPAddressV3 || len(g.NICs) != 3 {
		t.Fatalf("guest %+v", g)
	}
	if want := []string{"198.51.100.10/24", "198.51.100.200/32", "2001:db8::10/64", "fe80::250:56ff:feaa:bb01/64"}; !reflect.DeepEqual(g.NICs[0].IPs, want) {
		t.Errorf("eth0 %q", g.NICs[0].IPs)
	}
	if g.NICs[0].IPConfig[0] != (GuestIP{IP: "198.51.100.10", Prefix: 24, State: "preferred"}) || g.NICs[0].IPConfig[2].State != "unknown" {
		t.Errorf("ipConfig %+v", g.NICs[0].IPConfig)
	}
	if g.Routes[0] != (GuestRoute{Dest: "0.0.0.0/0", Gateway: "198.51.100.1", NIC: 0}) {
		t.Errorf("routes %+v", g.Routes)
	}
	if g.DNS == nil || g.DNS.DomainName != "example.test" || !reflect.DeepEqual(g.DNS.Servers, []string{"198.51.100.53", "2001:db8::53"}) {
		t.Errorf("dns %+v", g.DNS)
	}
	if g.OSShortName != "debian12-64" || !strings.HasPrefix(g.OSFullName, "Linux ") || !strings.Contains(g.Detailed, "distroName='Debian GNU/Linux'") {
		t.Errorf("os %q %q %q", g.OSShortName, g.OSFullName, g.Detailed)
	}
	if len(g.Disks) == 0 || g.Disks[0].Name != "/" || g.Disks[0].Size == 0 {
		t.Errorf("disks %+v", g.Disks)
	}
}

// FuzzSetGuestInfo feeds arbitrary guest payloads to the VMX: no input may
// crash it or its state rendering.
func FuzzSetGuestInfo(f *testing.F) {
	f.Add(infoproto.InfoIPAddressV3, goldenNicInfo(f))
	f.Add(infoproto.InfoOSDetailed, infoproto.EncodeOSDetailed(infoproto.OSDetailed{ShortName: "x"}))
	f.Add(infoproto.InfoDiskFreeSpace, infoproto.EncodeDiskInfoV0([]infoproto.Disk{{Name: "/"}}))
	f.Add(0, []byte("{\n\"version\":\"1\",\n\"disks\":[\n]}"))
	nic, osd, disk := peerVectors(f)
	f.Add(infoproto.InfoIPAddressV3, nic)
	f.Add(infoproto.InfoOSDetailed, osd)
	f.Add(0, disk)
	c, err := New(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ int, payload []byte) {
		if typ == 0 {
			c.RPCI(t.Context(), Caller{}, infoproto.DiskInfoMessage(payload))
		} else {
			c.RPCI(t.Context(), Caller{}, infoproto.BinaryMessage(typ, payload))
		}
		if _, err := json.Marshal(c.State()); err != nil {
			t.Fatal(err)
		}
	})
}
