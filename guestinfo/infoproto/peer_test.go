package infoproto

import (
	"bytes"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// Golden vectors captured from Debian's vmtoolsd 12.2.0 under the ptrace
// trap by internal/e2e TestGuestInfoPeerNetns (testdata/peer/README.md at
// the module root).
const (
	peerNicInfo    = "../../../testdata/peer/guestinfo-nicinfo-v3.hex" // relative to testdata/
	peerOSDetailed = "../../../testdata/peer/guestinfo-osdetailed.hex"
	peerDiskInfo   = "../../testdata/peer/guestinfo-diskinfo-v1.json"
)

// TestPeerNicInfo decodes the NicInfo V3 open-vm-tools sent from the
// comparison scene and re-encodes it to the same bytes.
func TestPeerNicInfo(t *testing.T) {
	raw := testutil.ReadHex(t, peerNicInfo)
	n, err := DecodeNicInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		addr           string
		status, origin uint32
	}
	var eth0 []entry
	for _, e := range n.NICs[0].IPs {
		eth0 = append(eth0, entry{e.String(), e.Status, e.Origin})
	}
	// open-vm-tools: IPv4 preferred, IPv6 unknown, never an origin.
	want := []entry{
		{"198.51.100.10/24", StatusPreferred, 0},
		{"198.51.100.200/32", StatusPreferred, 0},
		{"2001:db8::10/64", StatusUnknown, 0},
		{"fe80::250:56ff:feaa:bb01/64", StatusUnknown, 0},
	}
	if len(n.NICs) != 3 || n.NICs[0].MAC != "00:50:56:aa:bb:01" || !slices.Equal(eth0, want) {
		t.Fatalf("NICs %+v", n.NICs)
	}
	// The container bridges it does not exclude by name.
	if n.NICs[1].MAC != "02:00:00:00:00:c0" || n.NICs[1].IPs[0].String() != "192.0.2.1/25" ||
		n.NICs[2].MAC != "02:00:00:00:00:b0" || n.NICs[2].IPs[0].String() != "192.0.2.129/25" {
		t.Errorf("bridges %+v %+v", n.NICs[1], n.NICs[2])
	}
	for _, nic := range n.NICs {
		if nic.DNS != nil || nic.WINS != nil || nic.DHCPv4 != nil || nic.DHCPv6 != nil {
			t.Errorf("per-NIC DNS/WINS/DHCP on Linux: %+v", nic)
		}
	}
	def := Route{Dest: netip.IPv4Unspecified(), NextHop: netip.MustParseAddr("198.51.100.1")}
	if len(n.Routes) == 0 || n.Routes[0] != def {
		t.Errorf("first route %+v, want the default route via 198.51.100.1 on NIC 0", n.Routes)
	}
	// IPv6 routes come from /proc/net/ipv6_route: the local table's host
	// routes and ff00::/8 are there too.
	if !slices.ContainsFunc(n.Routes, func(r Route) bool { return r.PrefixLen == 8 && r.Dest == netip.MustParseAddr("ff00::") }) {
		t.Errorf("no multicast route: %+v", n.Routes)
	}
	d := n.DNS
	if d == nil || d.DomainName == nil || *d.DomainName != "example.test" || d.HostName == nil ||
		!slices.Equal(d.Servers, []netip.Addr{netip.MustParseAddr("198.51.100.53"), netip.MustParseAddr("2001:db8::53")}) ||
		!slices.Equal(d.Suffixes, []string{"example.test", "corp.example.test"}) {
		t.Errorf("DNS %+v", d)
	}
	if n.WINS != nil || n.DHCPv4 != nil || n.DHCPv6 != nil {
		t.Errorf("WINS/DHCP on Linux: %+v", n)
	}
	again, err := EncodeNicInfo(n)
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs from open-vm-tools' bytes (%v):\n%x\n%x", err, again, raw)
	}
	if n.Size() != len(raw) {
		t.Errorf("Size() = %d, encoded %d", n.Size(), len(raw))
	}
}

// TestPeerOSDetailed decodes open-vm-tools' OS detailed payload (header,
// string, NUL) and re-encodes it to the same bytes.
func TestPeerOSDetailed(t *testing.T) {
	raw := testutil.ReadHex(t, peerOSDetailed)
	d, err := DecodeOSDetailed(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.ShortName != "debian12-64" || len(raw) != 648+len(d.Detailed)+1 {
		t.Fatalf("%+v (%d bytes)", d, len(raw))
	}
	det, extra, err := ParseDetailed(d.Detailed)
	if err != nil || len(extra) != 0 || det.DistroName != "Debian GNU/Linux" || det.DistroVersion != "12" || det.FamilyName != "Linux" || det.Bitness != "64" {
		t.Fatalf("detailed %q: %+v %v %v", d.Detailed, det, extra, err)
	}
	if det.String() != d.Detailed {
		t.Errorf("detailed string re-rendered as\n%q\nwant\n%q", det.String(), d.Detailed)
	}
	if again := EncodeOSDetailed(d); !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs from open-vm-tools' bytes")
	}
}

// TestPeerDiskInfo decodes open-vm-tools' SetGuestDiskInfo document and
// re-encodes it to the same bytes.
func TestPeerDiskInfo(t *testing.T) {
	raw, err := os.ReadFile(peerDiskInfo)
	if err != nil {
		t.Fatal(err)
	}
	disks, err := DecodeDiskInfoV1(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) == 0 || disks[0].Name != "/" || disks[0].FSType == "" || disks[0].Size == 0 || disks[0].Free > disks[0].Size {
		t.Fatalf("disks %+v", disks)
	}
	if again := EncodeDiskInfoV1(disks); !bytes.Equal(again, raw) {
		t.Fatalf("re-encoding differs:\n%s\nwant\n%s", again, raw)
	}
}
