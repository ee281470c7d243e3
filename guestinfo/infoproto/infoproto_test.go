package infoproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

func str(s string) *string { return &s }

func basicNicInfo() *NicInfo {
	return &NicInfo{
		NICs: []NIC{{
			MAC: "00:50:56:aa:bb:01",
			IPs: []IPEntry{
				{Addr: netip.MustParseAddr("198.51.100.10"), PrefixLen: 24, Status: StatusPreferred},
				{Addr: netip.MustParseAddr("2001:db8::10"), PrefixLen: 64, Status: StatusUnknown},
			},
		}},
		Routes: []Route{{Dest: netip.MustParseAddr("0.0.0.0"), NextHop: netip.MustParseAddr("198.51.100.1")}},
		DNS: &DNSConfig{
			HostName:   str("vm1"),
			DomainName: str("example.test"),
			Servers:    []netip.Addr{netip.MustParseAddr("198.51.100.53")},
			Suffixes:   []string{"example.test"},
		},
	}
}

func TestNicInfoGolden(t *testing.T) {
	tests := []struct {
		file string
		info *NicInfo
	}{
		{"nicinfo-v3-basic.hex", basicNicInfo()},
		{"nicinfo-v3-empty.hex", &NicInfo{}},
		{"nicinfo-v3-wins-dhcp.hex", &NicInfo{
			NICs: []NIC{{
				MAC:    "00:0c:29:00:00:01",
				DNS:    &DNSConfig{Suffixes: []string{"a"}},
				WINS:   &WINSConfig{Primary: netip.IPv4Unspecified(), Secondary: netip.IPv4Unspecified()},
				DHCPv4: &DHCPConfig{Enabled: true, Settings: "x"},
			}},
			DHCPv6: &DHCPConfig{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			wire := testutil.ReadHex(t, tt.file)
			got, err := EncodeNicInfo(tt.info)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wire) {
				t.Fatalf("encode:\n got %x\nwant %x", got, wire)
			}
			if tt.info.Size() != len(wire) {
				t.Errorf("Size() = %d, encoding is %d bytes", tt.info.Size(), len(wire))
			}
			dec, err := DecodeNicInfo(wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dec, tt.info) {
				t.Fatalf("decode:\n got %+v\nwant %+v", dec, tt.info)
			}
		})
	}
}

func TestIPEntrySizes(t *testing.T) {
	// Spec 5.4: an IPv4 entry is 28 bytes, an IPv6 one 40.
	v4 := IPEntry{Addr: netip.MustParseAddr("203.0.113.1"), PrefixLen: 32, Status: StatusPreferred}
	v6 := IPEntry{Addr: netip.MustParseAddr("2001:db8::1"), PrefixLen: 64, Status: StatusUnknown}
	if v4.size() != 28 || v6.size() != 40 {
		t.Fatalf("sizes %d, %d", v4.size(), v6.size())
	}
}

func TestLinkLocalScopeCleared(t *testing.T) {
	n := &NicInfo{NICs: []NIC{{MAC: "00:50:56:00:00:01", IPs: []IPEntry{
		{Addr: netip.MustParseAddr("fe80:3::1"), PrefixLen: 64}, // KAME-style embedded scope
		{Addr: netip.MustParseAddr("fe80::1%eth0"), PrefixLen: 64},
		{Addr: netip.MustParseAddr("::ffff:198.51.100.7"), PrefixLen: 24},
	}}}}
	b, err := EncodeNicInfo(n)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeNicInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fe80::1/64", "fe80::1/64", "198.51.100.7/24"}
	for i, e := range d.NICs[0].IPs {
		if e.String() != want[i] {
			t.Errorf("ip %d = %s, want %s", i, e, want[i])
		}
	}
}

func TestDecodeNicInfoRejects(t *testing.T) {
	good := testutil.ReadHex(t, "nicinfo-v3-basic.hex")
	cases := map[string][]byte{
		"empty":       nil,
		"version 2":   append([]byte{0, 0, 0, 2}, good[4:]...),
		"absent body": {0, 0, 0, 3, 0, 0, 0, 0},
		"truncated":   good[:len(good)-3],
		"trailing":    append(append([]byte{}, good...), 0, 0, 0, 0),
		"17 nics":     {0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 17},
		"bad bool":    {0, 0, 0, 3, 0, 0, 0, 2},
	}
	// An IPv4 address with 5 bytes.
	bad := append([]byte{}, good...)
	binary.BigEndian.PutUint32(bad[12+4+20+4+4:], 5)
	cases["ipv4 of 5 bytes"] = bad
	// Non-zero padding after the MAC.
	pad := append([]byte{}, good...)
	pad[12+4+17] = 1
	cases["padding"] = pad
	for name, b := range cases {
		if _, err := DecodeNicInfo(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	n := &NicInfo{}
	for range 17 {
		n.NICs = append(n.NICs, NIC{MAC: "00:50:56:00:00:01"})
	}
	if _, err := EncodeNicInfo(n); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("17 NICs: %v", err)
	}
}

func manyAddrs(nics, per int) *NicInfo {
	n := &NicInfo{DNS: &DNSConfig{HostName: str("h"), Suffixes: []string{"a.test", "b.test"}, Servers: []netip.Addr{netip.MustParseAddr("198.51.100.53")}}}
	for i := range nics {
		nic := NIC{MAC: "00:50:56:00:00:0" + string(rune('0'+i))}
		nic.IPs = append(nic.IPs, IPEntry{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), PrefixLen: 24, Status: 1})
		for j := range per - 1 {
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(j >> 8), byte(j)})
			if j%4 == 0 {
				a = netip.AddrFrom16([16]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i), 0, byte(j >> 8), byte(j)})
			}
			nic.IPs = append(nic.IPs, IPEntry{Addr: a, PrefixLen: 64, Status: 5})
		}
		n.NICs = append(n.NICs, nic)
	}
	for i := range 100 {
		n.Routes = append(n.Routes, Route{Dest: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), PrefixLen: 32, IfIndex: uint32(i % nics)})
	}
	return n
}

func TestFitNicInfoOrder(t *testing.T) {
	n := manyAddrs(4, 600) // about 96 KiB
	if n.Size() <= MaxMessage {
		t.Fatalf("fixture too small: %d", n.Size())
	}
	budget := MaxMessage - len(BinaryPrefix(InfoIPAddressV3))
	fit, trimmed := FitNicInfo(n, budget)
	b, err := EncodeNicInfo(fit)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > budget || len(b) != fit.Size() {
		t.Fatalf("fit to %d bytes, budget %d, Size %d", len(b), budget, fit.Size())
	}
	if trimmed.Routes != 100 || trimmed.DNSEntries != 3 {
		t.Errorf("routes and DNS go first: %+v", trimmed)
	}
	if trimmed.LinkLocal == 0 || trimmed.NICs != 0 {
		t.Errorf("link-local addresses go before NICs: %+v", trimmed)
	}
	// Step 4 runs from the last NIC: NICs 0-2 keep every non-link-local
	// address (450 of 600), NIC 3 pays the rest.
	for i := range 3 {
		if len(fit.NICs[i].IPs) != 450 {
			t.Errorf("NIC %d kept %d addresses, want 450 (trimmed %+v)", i, len(fit.NICs[i].IPs), trimmed)
		}
	}
	if got := len(fit.NICs[3].IPs); got != 450-trimmed.Addresses {
		t.Errorf("NIC 3 kept %d", got)
	}
	for _, nic := range fit.NICs {
		if len(nic.IPs) == 0 || !nic.IPs[0].Addr.Is4() {
			t.Fatalf("a NIC lost its first address")
		}
	}
	// The original is not modified.
	if len(n.Routes) != 100 || len(n.NICs[3].IPs) != 600 {
		t.Fatal("FitNicInfo modified its input")
	}
	// Already small: untouched.
	small := basicNicInfo()
	if fit, tr := FitNicInfo(small, budget); tr.Any() || !reflect.DeepEqual(fit, small) {
		t.Fatalf("small info trimmed: %+v", tr)
	}
	// Tiny budget: whole NICs go, last first.
	fit, tr := FitNicInfo(n, 200)
	if fit.Size() > 200 || tr.NICs == 0 || len(fit.NICs) > 0 && fit.NICs[0].MAC != n.NICs[0].MAC {
		t.Fatalf("tiny budget: %d bytes %+v", fit.Size(), tr)
	}
}

func TestCapIPs(t *testing.T) {
	n := manyAddrs(2, 100)
	c := CapIPs(n, MaxV2IPs)
	for _, nic := range c.NICs {
		if len(nic.IPs) != MaxV2IPs {
			t.Fatalf("capped to %d", len(nic.IPs))
		}
	}
	if len(n.NICs[0].IPs) != 100 {
		t.Fatal("CapIPs modified its input")
	}
}

func TestMessages(t *testing.T) {
	if got := string(TextMessage(InfoDNSName, "myhost")); got != "SetGuestInfo  1 myhost\x00" {
		t.Fatalf("text: %q", got)
	}
	if got := string(BinaryMessage(InfoIPAddressV3, []byte{0, 1})); got != "SetGuestInfo  10 \x00\x01" {
		t.Fatalf("binary: %q", got)
	}
	if got := string(DiskInfoMessage([]byte("{}"))); got != "SetGuestDiskInfo {}\x00" {
		t.Fatalf("disk: %q", got)
	}
	typ, p, err := SplitSetGuestInfo([]byte(" 7 12345\x00"))
	if err != nil || typ != 7 || Text(p) != "12345" {
		t.Fatalf("split: %d %q %v", typ, p, err)
	}
	for _, bad := range []string{"", " ", "x 1", "12 a", "0 a", "-1 a"} {
		if _, _, err := SplitSetGuestInfo([]byte(bad)); err == nil {
			t.Errorf("SplitSetGuestInfo(%q) accepted", bad)
		}
	}
}

func TestOSDetailedLayout(t *testing.T) {
	d := OSDetailed{ShortName: "vmware-photon-64", FullName: "Linux 6.1.10 VMware Photon OS/Linux", Detailed: "architecture='X86' bitness='64'"}
	b := EncodeOSDetailed(d)
	if len(b) != 648+len(d.Detailed)+1 {
		t.Fatalf("length %d", len(b))
	}
	if binary.LittleEndian.Uint32(b) != 1 {
		t.Fatal("version")
	}
	if string(b[4:4+16]) != "vmware-photon-64" || b[4+16] != 0 || b[132] != 0 {
		t.Fatal("shortName at offset 4")
	}
	if !bytes.HasPrefix(b[133:], []byte("Linux 6.1.10 ")) || b[645] != 0 || b[646] != 0 || b[647] != 0 {
		t.Fatal("fullName at offset 133, padding at 646")
	}
	if string(b[648:len(b)-1]) != d.Detailed || b[len(b)-1] != 0 {
		t.Fatal("detailed string at 648 with NUL")
	}
	got, err := DecodeOSDetailed(b)
	d.Version = 1
	if err != nil || got != d {
		t.Fatalf("decode: %+v %v", got, err)
	}
	// Over-long names are cut to their fields.
	long := EncodeOSDetailed(OSDetailed{ShortName: strings.Repeat("s", 300), FullName: strings.Repeat("f", 900)})
	got, err = DecodeOSDetailed(long)
	if err != nil || len(got.ShortName) != 128 || len(got.FullName) != 512 {
		t.Fatalf("long names: %d %d %v", len(got.ShortName), len(got.FullName), err)
	}
	for _, bad := range [][]byte{b[:647], append([]byte{2, 0, 0, 0}, b[4:]...)} {
		if _, err := DecodeOSDetailed(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("bad header accepted: %v", err)
		}
	}
}

func TestDetailedString(t *testing.T) {
	d := Detailed{
		Architecture:      "X86",
		Bitness:           "64",
		DistroAddlVersion: "22.04.3 LTS (Jammy Jellyfish)",
		DistroName:        "Ubuntu",
		DistroVersion:     "22.04",
		FamilyName:        "Linux",
		KernelVersion:     "5.15.0-91-generic",
		PrettyName:        "Ubuntu 22.04.3 LTS",
	}
	// The Ubuntu example of docs/architecture.md section 6.
	want := "architecture='X86' bitness='64' distroAddlVersion='22.04.3 LTS (Jammy Jellyfish)' distroName='Ubuntu' distroVersion='22.04' familyName='Linux' kernelVersion='5.15.0-91-generic' prettyName='Ubuntu 22.04.3 LTS'"
	if got := d.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e := Detailed{PrettyName: `It's a \ test  `, DistroName: "x"}
	if got := e.String(); got != `distroName='x' prettyName='It\'s a \\ test'` {
		t.Fatalf("escaping: %s", got)
	}
	back, extra, err := ParseDetailed(e.String() + " newKey='v'")
	if err != nil || back.PrettyName != `It's a \ test` || back.DistroName != "x" || len(extra) != 1 || extra[0] != [2]string{"newKey", "v"} {
		t.Fatalf("parse: %+v %v %v", back, extra, err)
	}
	long := Detailed{PrettyName: strings.Repeat(`'`, 2000)}
	s := long.String()
	if len(s) > MaxDetailedField-1 {
		t.Fatalf("field of %d bytes", len(s))
	}
	if _, _, err := ParseDetailed(s); err != nil {
		t.Fatalf("cut field does not parse: %v", err)
	}
	for _, bad := range []string{"a", "a='b", "='x'", "a b='c'"} {
		if _, _, err := ParseDetailed(bad); err == nil {
			t.Errorf("ParseDetailed(%q) accepted", bad)
		}
	}
}

func goldenDisks() []Disk {
	return []Disk{
		{Name: "/", Free: 1000, Size: 4096, FSType: "ext4", Devices: []string{"scsi0:0"}},
		{Name: "/boot/efi", Free: 0, Size: 512},
	}
}

func TestDiskInfoV1Golden(t *testing.T) {
	want, err := os.ReadFile("testdata/diskinfo-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	got := EncodeDiskInfoV1(goldenDisks())
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	dec, err := DecodeDiskInfoV1(append(got, 0))
	if err != nil || !reflect.DeepEqual(dec, goldenDisks()) {
		t.Fatalf("decode: %+v %v", dec, err)
	}
	if got := string(EncodeDiskInfoV1(nil)); got != "{\n\"version\":\"1\",\n\"disks\":[\n]}" {
		t.Fatalf("empty: %q", got)
	}
	for _, bad := range []string{"", "{", `{"version":"2","disks":[]}`, `{"version":"1","disks":[{"name":"!","free":"1","size":"1"}]}`, `{"version":"1","disks":[{"name":"","free":"-1","size":"1"}]}`} {
		if _, err := DecodeDiskInfoV1([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestDiskInfoV0Golden(t *testing.T) {
	wire := testutil.ReadHex(t, "diskinfo-v0.hex")
	got := EncodeDiskInfoV0([]Disk{{Name: "/", Free: 1000, Size: 4096, FSType: "ext4"}})
	if !bytes.Equal(got, wire) {
		t.Fatalf("got %x\nwant %x", got, wire)
	}
	dec, err := DecodeDiskInfoV0(wire)
	if err != nil || !reflect.DeepEqual(dec, []Disk{{Name: "/", Free: 1000, Size: 4096}}) {
		t.Fatalf("decode %+v %v", dec, err)
	}
	if _, err := DecodeDiskInfoV0(wire[:50]); !errors.Is(err, ErrMalformed) {
		t.Fatal("short V0 accepted")
	}
	long := EncodeDiskInfoV0([]Disk{{Name: strings.Repeat("n", 200)}})
	if dec, err := DecodeDiskInfoV0(long); err != nil || len(dec[0].Name) != 99 {
		t.Fatalf("long name: %v", err)
	}
}

func TestFitDisks(t *testing.T) {
	var disks []Disk
	for i := range 2000 {
		disks = append(disks, Disk{Name: "/mnt/" + strings.Repeat("x", 40) + string(rune('a'+i%26)), Free: 1 << 40, Size: 1 << 41, FSType: "xfs"})
	}
	fit := FitDisks(disks, MaxMessage)
	if len(fit) == 0 || len(fit) == len(disks) {
		t.Fatalf("kept %d", len(fit))
	}
	if n := len(DiskInfoMessage(EncodeDiskInfoV1(fit))); n > MaxMessage {
		t.Fatalf("message of %d bytes", n)
	}
}

// Fuzz targets: the VMX side decodes whatever a guest sends.

func FuzzDecodeNicInfo(f *testing.F) {
	for _, name := range []string{"nicinfo-v3-basic.hex", "nicinfo-v3-empty.hex", "nicinfo-v3-wins-dhcp.hex", peerNicInfo} {
		f.Add(testutil.ReadHex(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNicInfo(b)
		if err != nil {
			return
		}
		again, err := EncodeNicInfo(n)
		if err != nil {
			t.Fatalf("decoded info does not encode: %v", err)
		}
		if n.Size() != len(again) {
			t.Fatalf("Size %d, encoded %d", n.Size(), len(again))
		}
		// Encoding normalizes (IPv4-mapped to IPv4, link-local scope
		// bits cleared); after one pass the round trip is exact.
		n2, err := DecodeNicInfo(again)
		if err != nil {
			t.Fatalf("re-encoded info does not decode: %v", err)
		}
		third, _ := EncodeNicInfo(n2)
		if !bytes.Equal(third, again) {
			t.Fatalf("round trip differs")
		}
	})
}

func FuzzDecodeOSDetailed(f *testing.F) {
	f.Add(EncodeOSDetailed(OSDetailed{ShortName: "debian12-64", FullName: "Linux 6.1.0 Debian", Detailed: "architecture='X86'"}))
	f.Add(make([]byte, 648))
	f.Add(testutil.ReadHex(f, peerOSDetailed))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeOSDetailed(b)
		if err != nil {
			return
		}
		d2, err := DecodeOSDetailed(EncodeOSDetailed(d))
		if err != nil || d2 != d {
			t.Fatalf("round trip: %+v %+v %v", d, d2, err)
		}
		ParseDetailed(d.Detailed)
	})
}

func FuzzParseDetailed(f *testing.F) {
	f.Add("architecture='X86' bitness='64' prettyName='a\\'b'")
	f.Add("k='")
	f.Fuzz(func(t *testing.T, s string) {
		d, _, err := ParseDetailed(s)
		if err != nil {
			return
		}
		d2, _, err := ParseDetailed(d.String())
		if err != nil {
			t.Fatalf("formatted string does not parse: %v", err)
		}
		if d2.String() != d.String() {
			t.Fatalf("not stable: %q vs %q", d2.String(), d.String())
		}
	})
}

func FuzzDecodeDiskInfo(f *testing.F) {
	v1, err := os.ReadFile("testdata/diskinfo-v1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v1, false)
	peer, err := os.ReadFile(peerDiskInfo)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(peer, false)
	f.Add(testutil.ReadHex(f, "diskinfo-v0.hex"), true)
	f.Fuzz(func(t *testing.T, b []byte, v0 bool) {
		if v0 {
			disks, err := DecodeDiskInfoV0(b)
			if err == nil {
				if d2, err := DecodeDiskInfoV0(EncodeDiskInfoV0(disks)); err != nil || !reflect.DeepEqual(d2, disks) {
					t.Fatalf("V0 round trip: %v", err)
				}
			}
			return
		}
		disks, err := DecodeDiskInfoV1(b)
		if err == nil {
			d2, err := DecodeDiskInfoV1(EncodeDiskInfoV1(disks))
			if err != nil || len(d2) != len(disks) {
				t.Fatalf("V1 round trip: %v", err)
			}
		}
	})
}

func TestFitDisksExact(t *testing.T) {
	disks := goldenDisks()
	for budget := 0; budget < 400; budget++ {
		fit := FitDisks(disks, budget)
		n := len(DiskInfoMessage(EncodeDiskInfoV1(fit)))
		if len(fit) > 0 && n > budget {
			t.Fatalf("budget %d: %d bytes", budget, n)
		}
		if len(fit) < len(disks) && len(DiskInfoMessage(EncodeDiskInfoV1(disks[:len(fit)+1]))) <= budget {
			t.Fatalf("budget %d: kept %d, one more fits", budget, len(fit))
		}
	}
}
