package guestinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// Uname is the part of uname(2) guest info uses.
type Uname struct {
	Sysname, Nodename, Release, Machine string
}

// System reads facts from a file-system root, so that tests run over
// fixture trees. The zero value reads the running system.
type System struct {
	// Root prefixes every path (/etc, /proc, /run, /sys, /usr); "" is /.
	Root string
	// Uname returns the kernel identity; nil uses uname(2).
	Uname func() (Uname, error)
	// Statfs returns file-system sizes; nil uses statfs(2).
	Statfs func(path string) (FSStat, error)
	// Arch is GOARCH ("amd64", "arm64"); "" uses the running one.
	Arch string
}

// FSStat is the part of statfs(2) disk info uses.
type FSStat struct {
	Bsize                 int64
	Blocks, Bfree, Bavail uint64
}

func (s *System) path(p string) string { return filepath.Join(s.Root, p) }

func (s *System) readFile(p string) ([]byte, error) { return os.ReadFile(s.path(p)) }

func (s *System) uname() (Uname, error) {
	if s.Uname != nil {
		return s.Uname()
	}
	return sysUname()
}

// Hostname is gethostname(), as vmtoolsd sends it in INFO_DNS_NAME.
func (s *System) Hostname() (string, error) {
	u, err := s.uname()
	if err != nil {
		return "", err
	}
	return u.Nodename, nil
}

// Uptime returns the time since boot in hundredths of a second, from
// /proc/uptime (INFO_UPTIME).
func (s *System) Uptime() (int64, error) {
	b, err := s.readFile("/proc/uptime")
	if err != nil {
		return 0, fmt.Errorf("guestinfo: uptime: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("guestinfo: uptime: empty /proc/uptime")
	}
	whole, frac, _ := strings.Cut(f[0], ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || sec < 0 || sec > math.MaxInt64/100-1 { // hundredths must fit
		return 0, fmt.Errorf("guestinfo: uptime: bad /proc/uptime %q", f[0])
	}
	frac = (frac + "00")[:2]
	cs, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("guestinfo: uptime: bad /proc/uptime %q", f[0])
	}
	return sec*100 + cs, nil
}

// Resolver locations.
const (
	resolvConf       = "/etc/resolv.conf"
	resolvedStub     = "/run/systemd/resolve/stub-resolv.conf"
	resolvedUpstream = "/run/systemd/resolve/resolv.conf"
)

// DNS returns the top-level DnsConfigInfo: hostName from gethostname,
// domainName and search list from resolv.conf, and the name servers. When
// /etc/resolv.conf points at systemd-resolved's stub (or names only
// 127.0.0.53), the servers come from systemd-resolved's upstream list
// /run/systemd/resolve/resolv.conf, as vmtoolsd does. Unlike glibc (and so
// vmtoolsd), more than three servers are reported, up to 16.
func (s *System) DNS(hostname string) *infoproto.DNSConfig {
	d := &infoproto.DNSConfig{HostName: &hostname}
	main := parseResolv(s.readFileOrNil(resolvConf))
	servers := main.servers
	if s.usesResolvedStub(main) {
		if up := parseResolv(s.readFileOrNil(resolvedUpstream)); len(up.servers) > 0 {
			servers = up.servers
		}
	}
	domain := main.domain
	if domain == "" && len(main.search) > 0 {
		domain = main.search[0]
	}
	if domain == "" {
		if _, after, ok := strings.Cut(hostname, "."); ok {
			domain = after
		}
	}
	d.DomainName = &domain
	search := main.search
	if len(search) == 0 && main.domain != "" {
		search = []string{main.domain}
	}
	for _, x := range search {
		if len(d.Suffixes) < infoproto.MaxDNSSuffixes && len(x) <= 255 {
			d.Suffixes = append(d.Suffixes, x)
		}
	}
	for _, a := range servers {
		if len(d.Servers) < infoproto.MaxDNSServers {
			d.Servers = append(d.Servers, a)
		}
	}
	if len(hostname) > 255 {
		d.HostName = nil
	}
	if len(domain) > 255 {
		d.DomainName = nil
	}
	return d
}

func (s *System) readFileOrNil(p string) []byte {
	b, _ := s.readFile(p)
	return b
}

func (s *System) usesResolvedStub(main resolv) bool {
	if target, err := filepath.EvalSymlinks(s.path(resolvConf)); err == nil {
		if stub, err := filepath.EvalSymlinks(s.path(resolvedStub)); err == nil && target == stub {
			return true
		}
	}
	return len(main.servers) == 1 && main.servers[0] == netip.MustParseAddr("127.0.0.53")
}

type resolv struct {
	servers []netip.Addr
	domain  string
	search  []string
}

// parseResolv reads resolv.conf(5): nameserver, domain and search; the
// last of domain and search wins, as in glibc.
func parseResolv(b []byte) resolv {
	var r resolv
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err == nil {
				r.servers = append(r.servers, a.WithZone(""))
			}
		case "domain":
			r.domain, r.search = f[1], nil
		case "search":
			r.domain, r.search = "", f[1:]
		}
	}
	return r
}
