package infoproto

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Limits from nicinfo.x and guestInfo.h.
const (
	MaxNICs         = 16   // NICINFO_MAX_NICS
	MaxIPs          = 2048 // NICINFO_MAX_IPS, per NIC
	MaxRoutes       = 100  // NICINFO_MAX_ROUTES
	MaxDNSServers   = 16   // DNSINFO_MAX_SERVERS
	MaxDNSSuffixes  = 10   // DNSINFO_MAX_SUFFIXES
	MaxMACLen       = 18   // NICINFO_MAC_LEN
	MaxV2IPs        = 64   // INFO_IPADDRESS_V2_MAX_IPS
	maxAddrLen      = 255  // TypedIpAddress opaque<255>
	maxDNSString    = 255  // DNS names and suffixes
	maxDHCPSettings = 16384
)

// NicInfo versions (NicInfoVersion).
const (
	NicInfoV1 = 1
	NicInfoV2 = 2
	NicInfoV3 = 3
)

// Address types (InetAddressType).
const (
	AddrTypeUnknown = 0
	AddrTypeIPv4    = 1
	AddrTypeIPv6    = 2
)

// IpAddressOrigin values.
const (
	OriginOther     = 1
	OriginManual    = 2
	OriginDHCP      = 4
	OriginLinkLayer = 5
	OriginRandom    = 6
)

// IpAddressStatus values used by Linux vmtoolsd.
const (
	StatusPreferred = 1
	StatusUnknown   = 5
)

// NicInfo is NicInfoV3: the guest's NICs, routes and DNS configuration.
type NicInfo struct {
	NICs   []NIC
	Routes []Route
	DNS    *DNSConfig // Linux: present
	WINS   *WINSConfig
	DHCPv4 *DHCPConfig
	DHCPv6 *DHCPConfig
}

// NIC is GuestNicV3.
type NIC struct {
	MAC    string // "aa:bb:cc:dd:ee:ff", lower case
	IPs    []IPEntry
	DNS    *DNSConfig
	WINS   *WINSConfig
	DHCPv4 *DHCPConfig
	DHCPv6 *DHCPConfig
}

// IPEntry is IpAddressEntry.
type IPEntry struct {
	Addr      netip.Addr
	PrefixLen uint32
	// Origin and Status are optional on the wire; 0 means absent (the
	// protocol defines no 0 value for either).
	Origin uint32
	Status uint32
}

// Prefix renders the entry as "addr/prefix".
func (e IPEntry) String() string { return fmt.Sprintf("%s/%d", e.Addr, e.PrefixLen) }

// Route is InetCidrRouteEntry.
type Route struct {
	Dest      netip.Addr
	PrefixLen uint32
	NextHop   netip.Addr // invalid when the route has no gateway
	IfIndex   uint32     // index into NicInfo.NICs, not a kernel ifindex
	Type      uint32
	Metric    uint32
}

// DNSConfig is DnsConfigInfo.
type DNSConfig struct {
	HostName   *string
	DomainName *string
	Servers    []netip.Addr
	Suffixes   []string
}

// WINSConfig is WinsConfigInfo (never filled on Linux).
type WINSConfig struct {
	Primary, Secondary netip.Addr
}

// DHCPConfig is DhcpConfigInfo (never filled on Linux).
type DHCPConfig struct {
	Enabled  bool
	Settings string
}

// ErrTooLarge is returned when a structure breaks a protocol limit.
var ErrTooLarge = errors.New("infoproto: over a protocol limit")

// EncodeNicInfo encodes n as GuestNicProto version 3, the payload of
// INFO_IPADDRESS_V3 (and of INFO_IPADDRESS_V2 after CapIPs).
func EncodeNicInfo(n *NicInfo) ([]byte, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	w := &xdrWriter{b: make([]byte, 0, n.Size())}
	w.u32(NicInfoV3)
	w.u32(1) // nicInfoV3 present
	w.u32(uint32(len(n.NICs)))
	for i := range n.NICs {
		nic := &n.NICs[i]
		w.opaque([]byte(nic.MAC))
		w.u32(uint32(len(nic.IPs)))
		for _, ip := range nic.IPs {
			writeAddr(w, ip.Addr)
			w.u32(ip.PrefixLen)
			writeOptU32(w, ip.Origin)
			writeOptU32(w, ip.Status)
		}
		writeDNS(w, nic.DNS)
		writeWINS(w, nic.WINS)
		writeDHCP(w, nic.DHCPv4)
		writeDHCP(w, nic.DHCPv6)
	}
	w.u32(uint32(len(n.Routes)))
	for _, r := range n.Routes {
		writeAddr(w, r.Dest)
		w.u32(r.PrefixLen)
		if r.NextHop.IsValid() {
			w.u32(1)
			writeAddr(w, r.NextHop)
		} else {
			w.u32(0)
		}
		w.u32(r.IfIndex)
		w.u32(r.Type)
		w.u32(r.Metric)
	}
	writeDNS(w, n.DNS)
	writeWINS(w, n.WINS)
	writeDHCP(w, n.DHCPv4)
	writeDHCP(w, n.DHCPv6)
	return w.b, nil
}

// Validate checks n against the limits of nicinfo.x.
func (n *NicInfo) Validate() error {
	if len(n.NICs) > MaxNICs {
		return fmt.Errorf("%w: %d NICs (max %d)", ErrTooLarge, len(n.NICs), MaxNICs)
	}
	if len(n.Routes) > MaxRoutes {
		return fmt.Errorf("%w: %d routes (max %d)", ErrTooLarge, len(n.Routes), MaxRoutes)
	}
	for i, nic := range n.NICs {
		if len(nic.MAC) > MaxMACLen {
			return fmt.Errorf("%w: NIC %d MAC %q", ErrTooLarge, i, nic.MAC)
		}
		if len(nic.IPs) > MaxIPs {
			return fmt.Errorf("%w: NIC %d has %d IPs (max %d)", ErrTooLarge, i, len(nic.IPs), MaxIPs)
		}
		for _, ip := range nic.IPs {
			if !ip.Addr.IsValid() {
				return fmt.Errorf("infoproto: NIC %d: invalid address", i)
			}
		}
		if err := nic.DNS.validate(); err != nil {
			return err
		}
		if err := nic.DHCPv4.validate(); err != nil {
			return err
		}
		if err := nic.DHCPv6.validate(); err != nil {
			return err
		}
	}
	for i, r := range n.Routes {
		if !r.Dest.IsValid() {
			return fmt.Errorf("infoproto: route %d: invalid destination", i)
		}
	}
	if err := n.DNS.validate(); err != nil {
		return err
	}
	if err := n.DHCPv4.validate(); err != nil {
		return err
	}
	return n.DHCPv6.validate()
}

func (d *DNSConfig) validate() error {
	if d == nil {
		return nil
	}
	if len(d.Servers) > MaxDNSServers || len(d.Suffixes) > MaxDNSSuffixes {
		return fmt.Errorf("%w: %d DNS servers, %d suffixes", ErrTooLarge, len(d.Servers), len(d.Suffixes))
	}
	for _, s := range []*string{d.HostName, d.DomainName} {
		if s != nil && len(*s) > maxDNSString {
			return fmt.Errorf("%w: DNS name of %d bytes", ErrTooLarge, len(*s))
		}
	}
	for _, s := range d.Suffixes {
		if len(s) > maxDNSString {
			return fmt.Errorf("%w: DNS suffix of %d bytes", ErrTooLarge, len(s))
		}
	}
	for _, a := range d.Servers {
		if !a.IsValid() {
			return errors.New("infoproto: invalid DNS server address")
		}
	}
	return nil
}

func (d *DHCPConfig) validate() error {
	if d != nil && len(d.Settings) > maxDHCPSettings {
		return fmt.Errorf("%w: DHCP settings of %d bytes", ErrTooLarge, len(d.Settings))
	}
	return nil
}

// addrBytes returns the wire type and bytes of a: 4 bytes for IPv4 (also
// an IPv4-mapped IPv6 address), 16 for IPv6 without zone. The IPv6
// link-local fix of vmtoolsd is applied: in fe80::/10 the bits after the
// first 10 of the first 8 bytes are cleared (they may hold a scope id).
func addrBytes(a netip.Addr) (uint32, []byte) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return AddrTypeIPv4, b[:]
	}
	b := a.As16()
	if b[0] == 0xfe && b[1]&0xc0 == 0x80 {
		b[1] &= 0xc0
		for i := 2; i < 8; i++ {
			b[i] = 0
		}
	}
	return AddrTypeIPv6, b[:]
}

func writeAddr(w *xdrWriter, a netip.Addr) {
	typ, b := addrBytes(a)
	w.u32(typ)
	w.opaque(b)
}

func writeOptU32(w *xdrWriter, v uint32) {
	if v == 0 {
		w.u32(0)
		return
	}
	w.u32(1)
	w.u32(v)
}

func writeOptString(w *xdrWriter, s *string) {
	if s == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	w.opaque([]byte(*s))
}

func writeDNS(w *xdrWriter, d *DNSConfig) {
	if d == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	writeOptString(w, d.HostName)
	writeOptString(w, d.DomainName)
	w.u32(uint32(len(d.Servers)))
	for _, s := range d.Servers {
		writeAddr(w, s)
	}
	w.u32(uint32(len(d.Suffixes)))
	for _, s := range d.Suffixes {
		w.opaque([]byte(s))
	}
}

func writeWINS(w *xdrWriter, c *WINSConfig) {
	if c == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	writeAddr(w, c.Primary)
	writeAddr(w, c.Secondary)
}

func writeDHCP(w *xdrWriter, c *DHCPConfig) {
	if c == nil {
		w.u32(0)
		return
	}
	w.u32(1)
	w.bool(c.Enabled)
	w.opaque([]byte(c.Settings))
}

// DecodeNicInfo decodes a GuestNicProto of version 3. Every array limit of
// nicinfo.x is enforced; trailing bytes are an error.
func DecodeNicInfo(b []byte) (*NicInfo, error) {
	r := &xdrReader{b: b}
	ver := r.u32()
	if r.err == nil && ver != NicInfoV3 {
		return nil, malformed("NicInfo version %d (only 3 is decoded)", ver)
	}
	if !r.bool("nicInfoV3 present") {
		if r.err != nil {
			return nil, r.err
		}
		return nil, malformed("NicInfo version 3 without a body")
	}
	n := &NicInfo{}
	nn := r.count("nics", MaxNICs)
	for i := 0; i < nn && r.err == nil; i++ {
		var nic NIC
		nic.MAC = string(r.opaque("macAddress", MaxMACLen))
		ni := r.count("ips", MaxIPs)
		for j := 0; j < ni && r.err == nil; j++ {
			var e IPEntry
			e.Addr = readAddr(r)
			e.PrefixLen = r.u32()
			e.Origin = readOptU32(r, "origin")
			e.Status = readOptU32(r, "status")
			nic.IPs = append(nic.IPs, e)
		}
		nic.DNS = readDNS(r)
		nic.WINS = readWINS(r)
		nic.DHCPv4 = readDHCP(r)
		nic.DHCPv6 = readDHCP(r)
		n.NICs = append(n.NICs, nic)
	}
	nr := r.count("routes", MaxRoutes)
	for i := 0; i < nr && r.err == nil; i++ {
		var rt Route
		rt.Dest = readAddr(r)
		rt.PrefixLen = r.u32()
		if r.bool("nextHop present") {
			rt.NextHop = readAddr(r)
		}
		rt.IfIndex = r.u32()
		rt.Type = r.u32()
		rt.Metric = r.u32()
		n.Routes = append(n.Routes, rt)
	}
	n.DNS = readDNS(r)
	n.WINS = readWINS(r)
	n.DHCPv4 = readDHCP(r)
	n.DHCPv6 = readDHCP(r)
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, malformed("%d trailing bytes after NicInfo", len(b)-r.off)
	}
	return n, nil
}

func readAddr(r *xdrReader) netip.Addr {
	typ := r.u32()
	raw := r.opaque("address", maxAddrLen)
	if r.err != nil {
		return netip.Addr{}
	}
	switch {
	case typ == AddrTypeIPv4 && len(raw) == 4:
		return netip.AddrFrom4([4]byte(raw))
	case typ == AddrTypeIPv6 && len(raw) == 16:
		return netip.AddrFrom16([16]byte(raw))
	}
	r.fail("address type %d with %d bytes", typ, len(raw))
	return netip.Addr{}
}

func readOptU32(r *xdrReader, what string) uint32 {
	if r.bool(what + " present") {
		return r.u32()
	}
	return 0
}

func readOptString(r *xdrReader, what string) *string {
	if !r.bool(what + " present") {
		return nil
	}
	s := string(r.opaque(what, maxDNSString))
	return &s
}

func readDNS(r *xdrReader) *DNSConfig {
	if !r.bool("dns present") {
		return nil
	}
	d := &DNSConfig{}
	d.HostName = readOptString(r, "hostName")
	d.DomainName = readOptString(r, "domainName")
	ns := r.count("dns servers", MaxDNSServers)
	for i := 0; i < ns && r.err == nil; i++ {
		d.Servers = append(d.Servers, readAddr(r))
	}
	nx := r.count("dns suffixes", MaxDNSSuffixes)
	for i := 0; i < nx && r.err == nil; i++ {
		d.Suffixes = append(d.Suffixes, string(r.opaque("dns suffix", maxDNSString)))
	}
	return d
}

func readWINS(r *xdrReader) *WINSConfig {
	if !r.bool("wins present") {
		return nil
	}
	return &WINSConfig{Primary: readAddr(r), Secondary: readAddr(r)}
}

func readDHCP(r *xdrReader) *DHCPConfig {
	if !r.bool("dhcp present") {
		return nil
	}
	c := &DHCPConfig{Enabled: r.bool("dhcp enabled")}
	c.Settings = string(r.opaque("dhcp settings", maxDHCPSettings))
	return c
}

// Encoded sizes, so that trimming needs no trial encodes.

func addrSize(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 4 + xdrSize(4)
	}
	return 4 + xdrSize(16)
}

func (e IPEntry) size() int {
	s := addrSize(e.Addr) + 4 + 4 + 4
	if e.Origin != 0 {
		s += 4
	}
	if e.Status != 0 {
		s += 4
	}
	return s
}

func (r Route) size() int {
	s := addrSize(r.Dest) + 4 + 4 + 12
	if r.NextHop.IsValid() {
		s += addrSize(r.NextHop)
	}
	return s
}

func optStringSize(s *string) int {
	if s == nil {
		return 4
	}
	return 4 + xdrSize(len(*s))
}

func (d *DNSConfig) size() int {
	if d == nil {
		return 4
	}
	s := 4 + optStringSize(d.HostName) + optStringSize(d.DomainName) + 4 + 4
	for _, a := range d.Servers {
		s += addrSize(a)
	}
	for _, x := range d.Suffixes {
		s += xdrSize(len(x))
	}
	return s
}

func (c *WINSConfig) size() int {
	if c == nil {
		return 4
	}
	return 4 + addrSize(c.Primary) + addrSize(c.Secondary)
}

func (c *DHCPConfig) size() int {
	if c == nil {
		return 4
	}
	return 4 + 4 + xdrSize(len(c.Settings))
}

func (nic *NIC) size() int {
	s := xdrSize(len(nic.MAC)) + 4
	for _, e := range nic.IPs {
		s += e.size()
	}
	return s + nic.DNS.size() + nic.WINS.size() + nic.DHCPv4.size() + nic.DHCPv6.size()
}

// Size is the length of EncodeNicInfo's output for n.
func (n *NicInfo) Size() int {
	s := 4 + 4 + 4 + 4
	for i := range n.NICs {
		s += n.NICs[i].size()
	}
	for _, r := range n.Routes {
		s += r.size()
	}
	return s + n.DNS.size() + n.WINS.size() + n.DHCPv4.size() + n.DHCPv6.size()
}

// Clone returns a deep copy of n.
func (n *NicInfo) Clone() *NicInfo {
	if n == nil {
		return nil
	}
	c := &NicInfo{
		Routes: append([]Route(nil), n.Routes...),
		DNS:    n.DNS.clone(),
		WINS:   cloneWINS(n.WINS),
		DHCPv4: cloneDHCP(n.DHCPv4),
		DHCPv6: cloneDHCP(n.DHCPv6),
	}
	for _, nic := range n.NICs {
		nic.IPs = append([]IPEntry(nil), nic.IPs...)
		nic.DNS = nic.DNS.clone()
		nic.WINS = cloneWINS(nic.WINS)
		nic.DHCPv4 = cloneDHCP(nic.DHCPv4)
		nic.DHCPv6 = cloneDHCP(nic.DHCPv6)
		c.NICs = append(c.NICs, nic)
	}
	return c
}

func (d *DNSConfig) clone() *DNSConfig {
	if d == nil {
		return nil
	}
	c := &DNSConfig{
		Servers:  append([]netip.Addr(nil), d.Servers...),
		Suffixes: append([]string(nil), d.Suffixes...),
	}
	if d.HostName != nil {
		s := *d.HostName
		c.HostName = &s
	}
	if d.DomainName != nil {
		s := *d.DomainName
		c.DomainName = &s
	}
	return c
}

func cloneWINS(c *WINSConfig) *WINSConfig {
	if c == nil {
		return nil
	}
	x := *c
	return &x
}

func cloneDHCP(c *DHCPConfig) *DHCPConfig {
	if c == nil {
		return nil
	}
	x := *c
	return &x
}

// CapIPs returns a copy of n with each NIC's address list cut to max
// entries: the INFO_IPADDRESS_V2 fallback uses max = MaxV2IPs.
func CapIPs(n *NicInfo, max int) *NicInfo {
	c := n.Clone()
	for i := range c.NICs {
		if len(c.NICs[i].IPs) > max {
			c.NICs[i].IPs = c.NICs[i].IPs[:max]
		}
	}
	return c
}

// Trimmed counts what FitNicInfo removed.
type Trimmed struct {
	Routes, DNSEntries, LinkLocal, Addresses, NICs int
}

// Any reports whether anything was removed.
func (t Trimmed) Any() bool { return t != Trimmed{} }

// FitNicInfo returns a copy of n whose encoding is at most budget bytes,
// trimmed in the order the package documentation gives, and what it
// removed.
func FitNicInfo(n *NicInfo, budget int) (*NicInfo, Trimmed) {
	c := n.Clone()
	var t Trimmed
	size := c.Size()
	for size > budget && len(c.Routes) > 0 {
		size -= c.Routes[len(c.Routes)-1].size()
		c.Routes = c.Routes[:len(c.Routes)-1]
		t.Routes++
	}
	if c.DNS != nil {
		for size > budget && len(c.DNS.Suffixes) > 0 {
			last := c.DNS.Suffixes[len(c.DNS.Suffixes)-1]
			size -= xdrSize(len(last))
			c.DNS.Suffixes = c.DNS.Suffixes[:len(c.DNS.Suffixes)-1]
			t.DNSEntries++
		}
		for size > budget && len(c.DNS.Servers) > 0 {
			size -= addrSize(c.DNS.Servers[len(c.DNS.Servers)-1])
			c.DNS.Servers = c.DNS.Servers[:len(c.DNS.Servers)-1]
			t.DNSEntries++
		}
	}
	for i := len(c.NICs) - 1; i >= 0 && size > budget; i-- {
		ips := c.NICs[i].IPs[:0]
		for j, e := range c.NICs[i].IPs {
			if size > budget && j > 0 && e.Addr.Is6() && e.Addr.IsLinkLocalUnicast() {
				size -= e.size()
				t.LinkLocal++
				continue
			}
			ips = append(ips, e)
		}
		c.NICs[i].IPs = ips
	}
	for i := len(c.NICs) - 1; i >= 0 && size > budget; i-- {
		ips := c.NICs[i].IPs
		for len(ips) > 1 && size > budget {
			size -= ips[len(ips)-1].size()
			ips = ips[:len(ips)-1]
			t.Addresses++
		}
		c.NICs[i].IPs = ips
	}
	for size > budget && len(c.NICs) > 0 {
		size -= c.NICs[len(c.NICs)-1].size()
		c.NICs = c.NICs[:len(c.NICs)-1]
		t.NICs++
		// Routes were all dropped above, so no ifIndex dangles.
	}
	return c, t
}

// FormatMAC lower-cases a MAC address text, as vmtoolsd sends it.
func FormatMAC(mac string) string { return strings.ToLower(mac) }
