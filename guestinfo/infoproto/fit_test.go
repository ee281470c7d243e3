package infoproto

import (
	"net/netip"
	"testing"
)

// TestFitNicInfoExactBudgets: at each trimming stage a budget met
// exactly stops the trimming (one item removed, not two), addresses are
// cut only while more than one is left, the first address is never
// dropped as link-local, and a budget of 0 removes every NIC.
func TestFitNicInfoExactBudgets(t *testing.T) {
	v4 := func(b byte) IPEntry { return IPEntry{Addr: netip.AddrFrom4([4]byte{198, 51, 100, b}), PrefixLen: 24} }
	ll := func(b byte) IPEntry {
		return IPEntry{Addr: netip.AddrFrom16([16]byte{0xfe, 0x80, 15: b}), PrefixLen: 64}
	}
	route := func(b byte) Route { return Route{Dest: netip.AddrFrom4([4]byte{203, 0, 113, b}), PrefixLen: 32} }
	host := "h"
	cases := []struct {
		name   string
		n      *NicInfo
		remove int // bytes under the full size
		want   Trimmed
	}{
		{"nothing", &NicInfo{NICs: []NIC{{MAC: "m", IPs: []IPEntry{v4(1)}}}, Routes: []Route{route(1)}}, 0, Trimmed{}},
		{"one route", &NicInfo{NICs: []NIC{{MAC: "m", IPs: []IPEntry{v4(1)}}}, Routes: []Route{route(1), route(2), route(3)}}, route(3).size(), Trimmed{Routes: 1}},
		{"one suffix", &NicInfo{DNS: &DNSConfig{HostName: &host, Suffixes: []string{"a.test", "b.test"}, Servers: []netip.Addr{v4(9).Addr}}}, xdrSize(len("b.test")), Trimmed{DNSEntries: 1}},
		{"one server", &NicInfo{DNS: &DNSConfig{HostName: &host, Servers: []netip.Addr{v4(8).Addr, v4(9).Addr}}}, addrSize(v4(9).Addr), Trimmed{DNSEntries: 1}},
		{"one link-local of two NICs", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1), ll(1)}}, {MAC: "b", IPs: []IPEntry{v4(2), ll(2), ll(3)}}}}, ll(3).size(), Trimmed{LinkLocal: 1}},
		{"first address kept", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{ll(1), v4(1)}}}}, v4(1).size(), Trimmed{Addresses: 1}},
		{"one address of two NICs", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1), v4(2)}}, {MAC: "b", IPs: []IPEntry{v4(3), v4(4)}}}}, v4(4).size(), Trimmed{Addresses: 1}},
		{"one address of three", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1), v4(2), v4(3)}}}}, v4(3).size(), Trimmed{Addresses: 1}},
		{"address of the only NIC", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1), v4(2)}}}}, v4(2).size(), Trimmed{Addresses: 1}},
		{"last address goes with its NIC", &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1)}}, {MAC: "b", IPs: []IPEntry{v4(2), v4(3)}}}}, v4(2).size() + v4(3).size(), Trimmed{Addresses: 1, NICs: 1}},
	}
	for _, c := range cases {
		budget := c.n.Size() - c.remove
		got, tr := FitNicInfo(c.n, budget)
		if tr != c.want || got.Size() > budget {
			t.Errorf("%s: budget %d of %d: trimmed %+v to %d bytes, want %+v", c.name, budget, c.n.Size(), tr, got.Size(), c.want)
		}
	}
	n := &NicInfo{NICs: []NIC{{MAC: "a", IPs: []IPEntry{v4(1)}}, {MAC: "b", IPs: []IPEntry{v4(2)}}}}
	if got, tr := FitNicInfo(n, 0); len(got.NICs) != 0 || tr.NICs != 2 {
		t.Errorf("budget 0: %d NICs left, trimmed %+v", len(got.NICs), tr)
	}
}
