package infosync

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/guestinfo/report"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

func TestConfig(t *testing.T) {
	def := guestinfo.DefaultConfig()
	for _, tt := range []struct {
		name, conf string
		want       func(c *guestinfo.Config)
	}{
		{"empty file", "", func(*guestinfo.Config) {}},
		{"patterns, untrimmed", "[guestinfo]\nexclude-nics=docker*, veth*\nprimary-nics=ens*\nlow-priority-nics=wg?,tun*\n", func(c *guestinfo.Config) {
			c.ExcludeNICs = []string{"docker*", " veth*"}
			c.PrimaryNICs = []string{"ens*"}
			c.LowPriorityNICs = []string{"wg?", "tun*"}
		}},
		{"exclude-nics empty excludes no name", "[guestinfo]\nexclude-nics=\n", func(c *guestinfo.Config) { c.ExcludeNICs = []string{} }},
		{"route caps", "[guestinfo]\nmax-ipv4-routes=0\nmax-ipv6-routes=12\n", func(c *guestinfo.Config) { c.MaxIPv4Routes, c.MaxIPv6Routes = 0, 12 }},
		{"route caps out of range", "[guestinfo]\nmax-ipv4-routes=101\nmax-ipv6-routes=-2\n", func(*guestinfo.Config) {}},
		{"route caps malformed", "[guestinfo]\nmax-ipv4-routes=many\n", func(*guestinfo.Config) {}},
		{"poll-interval", "[guestinfo]\npoll-interval=5\n", func(c *guestinfo.Config) { c.PollInterval = 5 * time.Second }},
		{"poll-interval 0 disables", "[guestinfo]\npoll-interval=0\n", func(c *guestinfo.Config) { c.PollInterval = -1 }},
		{"poll-interval malformed", "[guestinfo]\npoll-interval=-4\n", func(*guestinfo.Config) {}},
		{"disk keys", "[guestinfo]\ndisable-query-diskinfo=true\ndiskinfo-include-reserved=1\ndiskinfo-report-device=false\n", func(c *guestinfo.Config) {
			c.DisableDiskInfo, c.DiskIncludeReserved, c.DiskNoDevices = true, true, true
		}},
		{"os names", "[guestosinfo]\nshort-name=  rhel9-64 \nlong-name=My RHEL\n", func(c *guestinfo.Config) { c.ShortName, c.LongName = "rhel9-64", "My RHEL" }},
		{"wrong group case is not read", "[GuestInfo]\nexclude-nics=\n", func(*guestinfo.Config) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := toolsconf.Parse([]byte(tt.conf))
			want := def
			tt.want(&want)
			if got := Config(f); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSchemaAcceptsStockKeys(t *testing.T) {
	// The [guestinfo] and [guestosinfo] keys of open-vm-tools' example
	// tools.conf draw no warning; typos do.
	f, _ := toolsconf.Parse([]byte("[guestinfo]\ndisable-perf-mon=false\ndisable-query-diskinfo=false\npoll-interval=30\nstats-interval=20\n" +
		"enable-stat-logging=false\nprimary-nics=\nlow-priority-nics=\nexclude-nics=veth*,docker*,virbr*\nmax-ipv4-routes=100\n" +
		"max-ipv6-routes=100\ndiskinfo-include-reserved=false\ndiskinfo-report-device=true\n[guestosinfo]\nshort-name=\nlong-name=\n"))
	if p := Schema().Check(f); len(p) != 0 {
		t.Errorf("stock keys warned about: %v", p)
	}
	f, _ = toolsconf.Parse([]byte("[guestinfo]\nexclude-nic=x\npoll-interval=soon\n"))
	if p := Schema().Check(f); len(p) != 2 {
		t.Errorf("problems %v, want the typo and the bad interval", p)
	}
}

// staticNet is a NetSource over a fixed snapshot.
type staticNet struct{ snap guestinfo.NetSnapshot }

func (s *staticNet) Snapshot() (*guestinfo.NetSnapshot, error) {
	c := s.snap
	return &c, nil
}

// k8sHost lists a CNI bridge (named outside every default pattern) before
// the VM's NIC, as a node that created cni0 early would.
func k8sHost() *staticNet {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	return &staticNet{guestinfo.NetSnapshot{
		Links: []guestinfo.Link{
			{Index: 1, Name: "lo", Loopback: true, Up: true},
			{Index: 2, Name: "cni0", Kind: "bridge", Up: true, MAC: mac("02:00:00:00:00:02")},
			{Index: 3, Name: "ens192", Up: true, MAC: mac("00:50:56:aa:bb:01")},
		},
		Addrs: []guestinfo.Addr{
			{LinkIndex: 1, Prefix: netip.MustParsePrefix("127.0.0.1/8")},
			{LinkIndex: 2, Prefix: netip.MustParsePrefix("192.0.2.1/24")},
			{LinkIndex: 3, Prefix: netip.MustParsePrefix("2001:db8::10/64")},
			{LinkIndex: 3, Prefix: netip.MustParsePrefix("198.51.100.10/24")},
		},
		Routes: []guestinfo.RouteFact{{LinkIndex: 3, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}},
	}}
}

func TestPrimaryIPRanked(t *testing.T) {
	cfg := guestinfo.DefaultConfig()
	p := &Plugin{Collector: &guestinfo.Collector{Sys: &guestinfo.System{}, Net: k8sHost()}, Config: func() guestinfo.Config { return cfg }}
	ip, err := p.PrimaryIP(t.Context())
	if err != nil || ip != netip.MustParseAddr("198.51.100.10") {
		t.Fatalf("PrimaryIP = %v, %v; want eth0's IPv4, not the CNI bridge's", ip, err)
	}
	// primary-nics overrides the ranking, as in open-vm-tools.
	cfg.PrimaryNICs = []string{"cni*"}
	if ip, _ := p.PrimaryIP(t.Context()); ip != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("with primary-nics=cni*: %v", ip)
	}
	cfg.PrimaryNICs = nil
	cfg.ExcludeNICs = []string{"ens*"}
	if _, err := p.PrimaryIP(t.Context()); err != ErrNoAddress {
		t.Fatalf("no reportable NIC: %v", err)
	}
}

// countingVMX records the SetGuestInfo types it receives.
type countingVMX struct {
	mu    sync.Mutex
	types []int
}

func (c *countingVMX) Call(ctx context.Context, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rest, ok := bytes.CutPrefix(req, []byte("SetGuestInfo ")); ok {
		if typ, _, err := infoproto.SplitSetGuestInfo(rest); err == nil {
			c.types = append(c.types, typ)
		}
	}
	return nil, nil
}

func (c *countingVMX) count(typ int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.types {
		if t == typ {
			n++
		}
	}
	return n
}

// TestResetAndUpdateResend: a TCLO reset makes the unchanged NIC info go
// out again (the cache is cleared); a tools.conf change that alters the
// NICs is sent without waiting for the poll.
func TestResetAndUpdateResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vmx := &countingVMX{}
		var mu sync.Mutex
		cfg := guestinfo.DefaultConfig()
		conf := func() guestinfo.Config { mu.Lock(); defer mu.Unlock(); return cfg }
		col := &guestinfo.Collector{Sys: &guestinfo.System{Root: t.TempDir(), Uname: func() (guestinfo.Uname, error) {
			return guestinfo.Uname{Sysname: "Linux", Nodename: "vm1", Release: "6.1", Machine: "x86_64"}, nil
		}}, Net: k8sHost()}
		p := &Plugin{
			Reporter:  &report.Reporter{Sender: vmx, Source: col, Config: conf},
			Collector: col,
			Config:    conf,
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		if n := vmx.count(infoproto.InfoIPAddressV3); n != 1 {
			t.Fatalf("first gather sent NIC info %d times", n)
		}
		p.Reset(ctx)
		synctest.Wait()
		if n := vmx.count(infoproto.InfoIPAddressV3); n != 2 {
			t.Fatalf("after reset: NIC info sent %d times, want it re-sent", n)
		}
		p.Update() // nothing changed: nothing re-sent
		synctest.Wait()
		if n := vmx.count(infoproto.InfoIPAddressV3); n != 2 {
			t.Fatalf("update without change re-sent NIC info (%d)", n)
		}
		mu.Lock()
		cfg.PrimaryNICs = []string{"cni*"}
		mu.Unlock()
		p.Update()
		synctest.Wait()
		if n := vmx.count(infoproto.InfoIPAddressV3); n != 3 {
			t.Fatalf("update with a new NIC order: NIC info sent %d times, want 3", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
