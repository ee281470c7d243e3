package guestinfo

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// containerHost is the E2E scene as kernel facts: eth0 (a veth standing in
// for the VM's NIC, VMware MAC) with a /24, a /32 VIP, IPv6 global and
// link-local and the default route; docker0 (bridge) with an address and
// a veth port; lo.
func containerHost() *NetSnapshot {
	return &NetSnapshot{
		Links: []Link{
			{Index: 1, Name: "lo", Loopback: true, Up: true, MAC: net.HardwareAddr{}},
			{Index: 2, Name: "docker0", Kind: "bridge", Up: true, MAC: mac("02:42:ac:11:00:01")},
			{Index: 3, Name: "vethc0ffee", Kind: "veth", MasterIndex: 2, Up: true, MAC: mac("6a:1f:00:00:00:02")},
			{Index: 4, Name: "eth0", Kind: "veth", Up: true, MAC: mac("00:50:56:aa:bb:01")},
			{Index: 5, Name: "flannel.1", Kind: "vxlan", Up: true, MAC: mac("5e:00:00:00:00:05")},
			{Index: 6, Name: "eth1", Up: false, MAC: mac("00:50:56:aa:bb:02")},
		},
		Addrs: []Addr{
			{LinkIndex: 1, Prefix: pfx("127.0.0.1/8"), Flags: IFAFPermanent},
			{LinkIndex: 1, Prefix: pfx("::1/128"), Flags: IFAFPermanent},
			{LinkIndex: 2, Prefix: pfx("203.0.113.1/24"), Flags: IFAFPermanent},
			{LinkIndex: 4, Prefix: pfx("fe80::250:56ff:feaa:bb01/64"), Flags: IFAFPermanent},
			{LinkIndex: 4, Prefix: pfx("198.51.100.10/24"), Flags: IFAFPermanent},
			{LinkIndex: 4, Prefix: pfx("198.51.100.200/32"), Flags: IFAFPermanent},
			{LinkIndex: 4, Prefix: pfx("2001:db8::10/64"), Flags: IFAFPermanent},
			{LinkIndex: 5, Prefix: pfx("203.0.113.129/32"), Flags: IFAFPermanent},
		},
		Routes: []RouteFact{
			{LinkIndex: 2, Dst: pfx("203.0.113.0/24")},
			{LinkIndex: 4, Dst: pfx("198.51.100.0/24")},
			{LinkIndex: 4, Dst: pfx("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1"), Metric: 100},
			{LinkIndex: 4, Dst: pfx("2001:db8::/64"), Metric: 256},
			{LinkIndex: 4, Dst: pfx("::/0"), Gw: netip.MustParseAddr("2001:db8::1"), Metric: 1024},
		},
	}
}

func noNames() *Config {
	c := DefaultConfig()
	c.ExcludeNICs = []string{} // kernel facts alone
	return &c
}

func TestContainerHostReportsOnlyTheVMNIC(t *testing.T) {
	for _, cfg := range []*Config{noNames(), func() *Config { c := DefaultConfig(); return &c }()} {
		res := BuildNicInfo(containerHost(), cfg, nil)
		if len(res.Info.NICs) != 1 || res.Names[0] != "eth0" {
			t.Fatalf("NICs %v\n%s", res.Names, Explain(containerHost(), cfg))
		}
		nic := res.Info.NICs[0]
		var got []string
		for _, e := range nic.IPs {
			got = append(got, e.String())
		}
		want := "198.51.100.10/24 198.51.100.200/32 2001:db8::10/64 fe80::250:56ff:feaa:bb01/64"
		if nic.MAC != "00:50:56:aa:bb:01" || strings.Join(got, " ") != want {
			t.Fatalf("eth0: %s %v", nic.MAC, got)
		}
		if len(res.Info.Routes) != 4 {
			t.Fatalf("routes: %+v", res.Info.Routes)
		}
		if r := res.Info.Routes[1]; r.Dest.String() != "0.0.0.0" || r.NextHop.String() != "198.51.100.1" || r.Metric != 100 || r.IfIndex != 0 {
			t.Fatalf("default route: %+v", r)
		}
		if !res.Info.Routes[2].Dest.Is6() {
			t.Fatal("IPv6 routes after IPv4")
		}
		if ip := PrimaryIP(containerHost(), cfg); ip != "198.51.100.10" {
			t.Fatalf("primary IP %q", ip)
		}
	}
}

func TestAddressStatusAndOrigin(t *testing.T) {
	snap := containerHost()
	snap.Addrs = append(snap.Addrs,
		Addr{LinkIndex: 4, Prefix: pfx("198.51.100.77/24"), ValidLft: 3600, Flags: IFAFSecondary},
		Addr{LinkIndex: 4, Prefix: pfx("2001:db8::abcd/64"), ValidLft: 600, Flags: IFAFSecondary | IFAFDeprecated},
		Addr{LinkIndex: 4, Prefix: pfx("2001:db8::dad/64"), Flags: IFAFTentative | IFAFPermanent},
	)
	res := BuildNicInfo(snap, noNames(), nil)
	got := map[string][2]uint32{}
	for _, e := range res.Info.NICs[0].IPs {
		got[e.Addr.String()] = [2]uint32{e.Origin, e.Status}
	}
	want := map[string][2]uint32{
		"198.51.100.10":            {2, 1}, // manual, preferred
		"198.51.100.77":            {4, 1}, // DHCP lease
		"2001:db8::abcd":           {6, 2}, // temporary, deprecated
		"2001:db8::dad":            {2, 6}, // tentative
		"fe80::250:56ff:feaa:bb01": {5, 1}, // link layer
	}
	for a, w := range want {
		if got[a] != w {
			t.Errorf("%s: origin/status %v, want %v", a, got[a], w)
		}
	}
}

func TestNameOverrides(t *testing.T) {
	cfg := noNames()
	cfg.LowPriorityNICs = []string{"docker*"}
	cfg.PrimaryNICs = []string{"flannel.?"}
	res := BuildNicInfo(containerHost(), cfg, nil)
	if strings.Join(res.Names, ",") != "flannel.1,eth0,docker0" {
		t.Fatalf("order %v", res.Names)
	}
	if ip := PrimaryIP(containerHost(), cfg); ip != "203.0.113.129" {
		t.Fatalf("primary-nics wins broadcastIP: %q", ip)
	}
	cfg.ExcludeNICs = []string{"eth*"}
	res = BuildNicInfo(containerHost(), cfg, nil)
	if strings.Join(res.Names, ",") != "flannel.1,docker0" {
		t.Fatalf("exclude: %v", res.Names)
	}
	// Route caps.
	cfg = noNames()
	cfg.MaxIPv4Routes, cfg.MaxIPv6Routes = 1, 0
	if r := BuildNicInfo(containerHost(), cfg, nil).Info.Routes; len(r) != 1 || !r[0].Dest.Is4() {
		t.Fatalf("capped routes %+v", r)
	}
}

// manyInterfaces is a container host with n veth/bridge/dummy interfaces
// created before and after the VM's two NICs.
func manyInterfaces(n int) *NetSnapshot {
	s := &NetSnapshot{}
	kinds := []string{"veth", "bridge", "dummy", "vxlan", "tun"}
	idx := 1
	add := func(l Link) int {
		l.Index = idx
		l.Up = true
		s.Links = append(s.Links, l)
		idx++
		return l.Index
	}
	for i := range n / 2 {
		j := add(Link{Name: fmt.Sprintf("cali%05d", i), Kind: kinds[i%len(kinds)], MAC: net.HardwareAddr{0x0a, 0, 0, 0, byte(i >> 8), byte(i)}})
		s.Addrs = append(s.Addrs, Addr{LinkIndex: j, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)})
	}
	e0 := add(Link{Name: "ens192", MAC: mac("00:50:56:00:00:01")})
	e1 := add(Link{Name: "ens224", MAC: mac("00:0c:29:00:00:02")})
	for i := n / 2; i < n; i++ {
		add(Link{Name: fmt.Sprintf("x%05d", i), Kind: kinds[i%len(kinds)], MAC: net.HardwareAddr{0x0a, 0, 0, 1, byte(i >> 8), byte(i)}})
	}
	s.Addrs = append(s.Addrs, Addr{LinkIndex: e1, Prefix: pfx("203.0.113.5/24")}, Addr{LinkIndex: e0, Prefix: pfx("198.51.100.5/24")})
	s.Routes = append(s.Routes, RouteFact{LinkIndex: e1, Dst: pfx("0.0.0.0/0"), Gw: netip.MustParseAddr("203.0.113.1")})
	return s
}

func TestThousandInterfacesRankedBeforeCap(t *testing.T) {
	snap := manyInterfaces(1000)
	cfg := noNames()
	res := BuildNicInfo(snap, cfg, nil)
	// The default-route owner first, then the other VM NIC; every
	// container interface is left out, so the cap is never reached.
	if strings.Join(res.Names, ",") != "ens224,ens192" || res.OverLimit != 0 {
		t.Fatalf("names %v over %d", res.Names, res.OverLimit)
	}
	if PrimaryIP(snap, cfg) != "203.0.113.5" {
		t.Fatal("broadcastIP follows the default route")
	}
	// Reporting the container interfaces too: the cap applies after
	// ranking, so the VM's NICs stay.
	cfg.LowPriorityNICs = []string{"*"}
	res = BuildNicInfo(snap, cfg, nil)
	if len(res.Names) != 16 || res.OverLimit != 1000-16+2 {
		t.Fatalf("cap: %d names, over %d", len(res.Names), res.OverLimit)
	}
	// Everything matches low-priority now, ens* included; the pattern
	// class keeps kernel order (default route first).
	if res.Names[0] != "ens224" {
		t.Fatalf("first %v", res.Names[:3])
	}
}

func TestSixteenCapKeepsOwnNICs(t *testing.T) {
	s := &NetSnapshot{}
	for i := range 20 {
		s.Links = append(s.Links, Link{Index: i + 1, Name: fmt.Sprintf("vlan%d", i), Kind: "vlan", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}})
	}
	s.Links = append(s.Links, Link{Index: 99, Name: "ens256", Up: true, MAC: mac("00:50:56:01:02:03")})
	res := BuildNicInfo(s, noNames(), nil)
	if res.Names[0] != "ens256" || len(res.Names) != 16 || res.OverLimit != 5 {
		t.Fatalf("%v over %d", res.Names, res.OverLimit)
	}
}

func TestWildcard(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		ok   bool
	}{
		{"docker*", "docker0", true}, {"docker*", "xdocker0", false}, {"*", "", true},
		{"veth?", "veth1", true}, {"veth?", "veth12", false}, {"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false}, {"eth0", "eth0", true}, {" eth0", "eth0", false},
	} {
		if Wildcard(tt.p, tt.s) != tt.ok {
			t.Errorf("Wildcard(%q, %q) != %v", tt.p, tt.s, tt.ok)
		}
	}
	if got := SplitPatterns("a*, b*"); len(got) != 2 || got[1] != " b*" {
		t.Fatalf("no trimming: %q", got)
	}
	if got := SplitPatterns(""); got == nil || len(got) != 0 {
		t.Fatal("empty value excludes nothing")
	}
}

func BenchmarkBuildNicInfo1000(b *testing.B) {
	snap := manyInterfaces(1000)
	cfg := noNames()
	for b.Loop() {
		BuildNicInfo(snap, cfg, nil)
	}
}
