package infoproto

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestValidateAtLimits: exactly the nicinfo.x limits are accepted, one
// more is refused.
func TestValidateAtLimits(t *testing.T) {
	n := &NicInfo{}
	for range MaxNICs {
		n.NICs = append(n.NICs, NIC{MAC: strings.Repeat("a", MaxMACLen)})
	}
	for i := range MaxRoutes {
		n.Routes = append(n.Routes, Route{Dest: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), PrefixLen: 32})
	}
	if err := n.Validate(); err != nil {
		t.Fatalf("%d NICs, %d routes, %d-byte MACs: %v", MaxNICs, MaxRoutes, MaxMACLen, err)
	}
	more := *n
	more.Routes = append(more.Routes[:MaxRoutes:MaxRoutes], more.Routes[0])
	if err := more.Validate(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d routes: %v", MaxRoutes+1, err)
	}
	n.NICs[3].MAC += "a"
	if err := n.Validate(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a %d-byte MAC: %v", MaxMACLen+1, err)
	}
}

// TestDiskInfoV0SecondEntry: entries after the first are decoded from
// their own offsets.
func TestDiskInfoV0SecondEntry(t *testing.T) {
	in := []Disk{{Free: 1, Size: 2, Name: "/"}, {Free: 3, Size: 4, Name: "/home"}, {Free: 5, Size: 6, Name: "/var"}}
	got, err := DecodeDiskInfoV0(EncodeDiskInfoV0(in))
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	for i := range in {
		if got[i].Free != in[i].Free || got[i].Size != in[i].Size || got[i].Name != in[i].Name {
			t.Errorf("disk %d: %+v, want %+v", i, got[i], in[i])
		}
	}
}

// TestTextLeadingNUL: a payload that starts with its terminator is empty.
func TestTextLeadingNUL(t *testing.T) {
	if got := Text([]byte("\x00junk")); got != "" {
		t.Errorf("Text = %q, want empty", got)
	}
	if got := Text([]byte("ab\x00c")); got != "ab" {
		t.Errorf("Text = %q, want ab", got)
	}
}

// TestValidateEveryLimit: a NicInfo with every list and string exactly
// at its limit is valid; one over anywhere (also after valid parts, in a
// later NIC or the global settings) is refused.
func TestValidateEveryLimit(t *testing.T) {
	name := strings.Repeat("n", maxDNSString)
	dns := func() *DNSConfig {
		d := &DNSConfig{HostName: &name, DomainName: &name}
		for i := range MaxDNSServers {
			d.Servers = append(d.Servers, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		}
		for range MaxDNSSuffixes {
			d.Suffixes = append(d.Suffixes, name)
		}
		return d
	}
	dhcp := func() *DHCPConfig { return &DHCPConfig{Settings: strings.Repeat("s", maxDHCPSettings)} }
	base := func() *NicInfo {
		n := &NicInfo{DNS: dns(), DHCPv4: dhcp(), DHCPv6: dhcp()}
		for i := range 2 {
			nic := NIC{MAC: "00:50:56:00:00:0" + string(rune('1'+i)), DNS: dns(), DHCPv4: dhcp(), DHCPv6: dhcp()}
			for j := range MaxIPs {
				nic.IPs = append(nic.IPs, IPEntry{Addr: netip.AddrFrom4([4]byte{10, byte(i), byte(j >> 8), byte(j)}), PrefixLen: 16})
			}
			n.NICs = append(n.NICs, nic)
		}
		return n
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("everything at its limit: %v", err)
	}
	for what, over := range map[string]func(n *NicInfo){
		"IPs":            func(n *NicInfo) { n.NICs[0].IPs = append(n.NICs[0].IPs, n.NICs[0].IPs[0]) },
		"DNS servers":    func(n *NicInfo) { n.NICs[0].DNS.Servers = append(n.NICs[0].DNS.Servers, n.NICs[0].DNS.Servers[0]) },
		"DNS suffixes":   func(n *NicInfo) { n.NICs[0].DNS.Suffixes = append(n.NICs[0].DNS.Suffixes, "x") },
		"host name":      func(n *NicInfo) { long := name + "x"; n.NICs[0].DNS.HostName = &long },
		"suffix":         func(n *NicInfo) { n.NICs[0].DNS.Suffixes[2] += "x" },
		"DHCP settings":  func(n *NicInfo) { n.NICs[0].DHCPv4.Settings += "x" },
		"second NIC MAC": func(n *NicInfo) { n.NICs[1].MAC = strings.Repeat("a", MaxMACLen+1) },
		"global DHCPv6":  func(n *NicInfo) { n.DHCPv6.Settings += "x" },
		"global DHCPv4":  func(n *NicInfo) { n.DHCPv4.Settings += "x" },
		"global DNS":     func(n *NicInfo) { n.DNS.Suffixes = append(n.DNS.Suffixes, "x") },
	} {
		n := base()
		over(n)
		if err := n.Validate(); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s one over: %v, want ErrTooLarge", what, err)
		}
	}
}

// TestOSDetailedEmptyFields: empty names and an empty detailed string
// (each a NUL at its first byte) decode as empty, and a payload of just
// the header is accepted.
func TestOSDetailedEmptyFields(t *testing.T) {
	b := EncodeOSDetailed(OSDetailed{})
	d, err := DecodeOSDetailed(b)
	if err != nil || d.ShortName != "" || d.FullName != "" || d.Detailed != "" {
		t.Fatalf("empty fields: %+v %v", d, err)
	}
	if d, err := DecodeOSDetailed(b[:DetailedHeaderSize]); err != nil || d.Detailed != "" {
		t.Errorf("header only: %+v %v", d, err)
	}
	if d, err := DecodeOSDetailed(EncodeOSDetailed(OSDetailed{ShortName: "\x00x", Detailed: "\x00y"})); err != nil || d.ShortName != "" || d.Detailed != "" {
		t.Errorf("names cut at a leading NUL: %+v %v", d, err)
	}
	// As C sends it: nothing of the detailed string after its first NUL.
	if b := EncodeOSDetailed(OSDetailed{Detailed: "\x00y"}); len(b) != DetailedHeaderSize+1 {
		t.Errorf("detailed string with a leading NUL encoded in %d bytes, want %d", len(b), DetailedHeaderSize+1)
	}
}

// TestXDRCountAndOpaqueBounds: a count at its limit passes, one over
// fails; an opaque whose bytes or padding run past the end (also at an
// offset) is truncated, not read.
func TestXDRCountAndOpaqueBounds(t *testing.T) {
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	r := &xdrReader{b: u32(16)}
	if n := r.count("x", 16); n != 16 || r.err != nil {
		t.Errorf("count at the limit: %d %v", n, r.err)
	}
	r = &xdrReader{b: u32(17)}
	if n := r.count("x", 16); n != 0 || r.err == nil {
		t.Errorf("count over the limit: %d %v", n, r.err)
	}
	// At offset 4: a 6-byte opaque with only 4 bytes (and no padding) left.
	r = &xdrReader{b: append(append(u32(0), u32(6)...), "abcd"...), off: 4}
	if p := r.opaque("x", 100); p != nil || r.err == nil {
		t.Errorf("opaque past the end: %q %v", p, r.err)
	}
	// One byte of data, its three bytes of padding missing.
	r = &xdrReader{b: append(u32(1), 'a')}
	if p := r.opaque("x", 100); p != nil || r.err == nil {
		t.Errorf("opaque without its padding: %q %v", p, r.err)
	}
	r = &xdrReader{b: append(u32(1), 'a', 0, 0, 0)}
	if p := r.opaque("x", 100); string(p) != "a" || r.err != nil {
		t.Errorf("padded opaque: %q %v", p, r.err)
	}
}

// TestDetailedStringCutEscapes: a value cut to fit never ends on a lone
// escape character, whatever the parity of the cut; ParseDetailed of a
// value ending in a backslash is an error, not a read past the end.
func TestDetailedStringCutEscapes(t *testing.T) {
	for extra := range 4 {
		var d Detailed
		for _, f := range d.fields() {
			*f.val = strings.Repeat("a", extra) + strings.Repeat("\\", MaxDetailedField)
		}
		s := d.String()
		for _, f := range d.fields() {
			i := strings.Index(s, f.key+"='")
			if i < 0 {
				t.Fatalf("%s missing from %q", f.key, s)
			}
			v := s[i+len(f.key)+2:]
			v = v[:strings.IndexByte(v, '\'')]
			if len(f.key)+3+len(v) > MaxDetailedField-1 {
				t.Errorf("%s: %d-byte field", f.key, len(f.key)+3+len(v))
			}
			run := len(v) - len(strings.TrimRight(v, "\\"))
			if run%2 != 0 {
				t.Errorf("%s (%d a's): value ends on %d backslashes", f.key, extra, run)
			}
		}
	}
	if _, _, err := ParseDetailed("prettyName='x\\"); err == nil {
		t.Error("value ending in a backslash: no error")
	}
}

// TestDiskInfoV0Edges: no disks is one byte; a payload of exactly its
// entries (without the padding) decodes; a name too long for the field
// is cut and still terminated.
func TestDiskInfoV0Edges(t *testing.T) {
	if d, err := DecodeDiskInfoV0([]byte{0}); err != nil || len(d) != 0 {
		t.Errorf("no disks: %v %v", d, err)
	}
	for _, n := range []int{V0NameLen - 1, V0NameLen, V0NameLen + 1, V0NameLen + 5} {
		b := EncodeDiskInfoV0([]Disk{{Free: 1, Size: 2, Name: strings.Repeat("n", n)}})
		d, err := DecodeDiskInfoV0(b[:len(b)-2])
		if err != nil || len(d) != 1 || d[0].Name != strings.Repeat("n", V0NameLen-1) {
			t.Errorf("exact payload, %d-byte name: %+v %v", n, d, err)
		}
	}
}
