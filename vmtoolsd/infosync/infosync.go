// Package infosync is vmtoolsd's guest-info feature: it keeps the host's
// view of the guest (host name, OS, NICs, routes, DNS, disks) in sync by
// plugging guest info (guestinfo, guestinfo/report) into vmtoolsd. It reads tools.conf's [guestinfo] and [guestosinfo]
// groups into a guestinfo.Config, runs the reporter as a vmtoolsd feature
// (a Runner and a Resetter: every TCLO reset clears the reporter's cache
// and sends everything again), gathers again when tools.conf changes, and
// answers Set_Option broadcastIP with the primary address ranked as the
// reported NICs are (a PrimaryIPer).
package infosync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/report"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

var (
	_ vmtoolsd.Plugin      = (*Plugin)(nil)
	_ vmtoolsd.PrimaryIPer = (*Plugin)(nil)
)

// Group names in tools.conf.
const (
	Group   = "guestinfo"
	OSGroup = "guestosinfo"
)

// Schema lists the tools.conf keys guest info honours, for the daemon's
// toolsconf.Schema. stats-interval, disable-perf-mon and
// enable-stat-logging belong to open-vm-tools' memory statistics, which
// govmtools does not send; they are accepted so that a stock tools.conf
// draws no warning, and have no effect.
func Schema() toolsconf.Schema {
	return toolsconf.Schema{
		Group: {
			"poll-interval":             toolsconf.Seconds,
			"exclude-nics":              toolsconf.String,
			"primary-nics":              toolsconf.String,
			"low-priority-nics":         toolsconf.String,
			"max-ipv4-routes":           toolsconf.Int,
			"max-ipv6-routes":           toolsconf.Int,
			"disable-query-diskinfo":    toolsconf.Bool,
			"diskinfo-include-reserved": toolsconf.Bool,
			"diskinfo-report-device":    toolsconf.Bool,
			"stats-interval":            toolsconf.Seconds,
			"disable-perf-mon":          toolsconf.Bool,
			"enable-stat-logging":       toolsconf.Bool,
		},
		OSGroup: {
			"short-name": toolsconf.String,
			"long-name":  toolsconf.String,
		},
	}
}

// Config reads f into a guestinfo.Config, as open-vm-tools reads the same
// keys:
//
//   - exclude-nics, primary-nics, low-priority-nics: comma-separated glob
//     lists, not trimmed; exclude-nics set to an empty value excludes no
//     name (kernel facts still leave container interfaces out), unset
//     means the default list;
//   - max-ipv4-routes, max-ipv6-routes: 0 to 100; a value out of range or
//     not a number counts as unset (100);
//   - poll-interval: seconds; 0 disables the periodic gather (network
//     changes are still reported as they happen); unset or malformed
//     means 30 s;
//   - disable-query-diskinfo, diskinfo-include-reserved,
//     diskinfo-report-device (default true);
//   - [guestosinfo] short-name and long-name override the OS names
//     (long-name only together with short-name).
func Config(f *toolsconf.File) guestinfo.Config {
	c := guestinfo.DefaultConfig()
	if v, ok := f.Lookup(Group, "exclude-nics"); ok {
		c.ExcludeNICs = guestinfo.SplitPatterns(v)
	}
	if v, ok := f.Lookup(Group, "primary-nics"); ok {
		c.PrimaryNICs = guestinfo.SplitPatterns(v)
	}
	if v, ok := f.Lookup(Group, "low-priority-nics"); ok {
		c.LowPriorityNICs = guestinfo.SplitPatterns(v)
	}
	c.MaxIPv4Routes = routes(f, "max-ipv4-routes")
	c.MaxIPv6Routes = routes(f, "max-ipv6-routes")
	switch d := f.Seconds(Group, "poll-interval", -1); {
	case d == 0:
		c.PollInterval = -1 // explicitly disabled
	case d > 0:
		c.PollInterval = d
	} // unset or malformed: 0, the default
	c.DisableDiskInfo = f.Bool(Group, "disable-query-diskinfo", false)
	c.DiskIncludeReserved = f.Bool(Group, "diskinfo-include-reserved", false)
	c.DiskNoDevices = !f.Bool(Group, "diskinfo-report-device", true)
	c.ShortName = strings.TrimSpace(f.String(OSGroup, "short-name", ""))
	c.LongName = strings.TrimSpace(f.String(OSGroup, "long-name", ""))
	return c
}

func routes(f *toolsconf.File, key string) int {
	n := f.Int(Group, key, -1)
	if n < 0 || n > 100 {
		return -1
	}
	return n
}

// Plugin is the guest-info feature of vmtoolsd.
type Plugin struct {
	// Reporter sends the guest info; its Config should be the same
	// function as Config below.
	Reporter *report.Reporter
	// Collector answers broadcastIP (it shares the reporter's network
	// source).
	Collector *guestinfo.Collector
	// Config returns the current settings.
	Config func() guestinfo.Config

	close func() error
}

// New builds the feature for the daemon: the reporter watching this
// network namespace through netlink, and the host name, os-release and
// resolv.conf through the kernel's notifications, sending over rpci, with
// its settings read from the current tools.conf at every gather. Close
// releases the netlink socket.
func New(rpci report.Sender, current func() *toolsconf.File, buildNumber string, logger *slog.Logger) *Plugin {
	nl := guestinfo.NewNetlink()
	sys := &guestinfo.System{}
	col := &guestinfo.Collector{Sys: sys, Net: nl}
	cfg := func() guestinfo.Config { return Config(current()) }
	return &Plugin{
		Reporter: &report.Reporter{
			Sender:      rpci,
			Source:      col,
			Watcher:     nl,
			HostWatcher: &guestinfo.HostWatch{Sys: sys},
			Config:      cfg,
			BuildNumber: buildNumber,
			Logger:      logger,
		},
		Collector: col,
		Config:    cfg,
		close:     nl.Close,
	}
}

// Close releases what New opened.
func (p *Plugin) Close() error {
	if p.close == nil {
		return nil
	}
	return p.close()
}

// Plug registers guest info with the tools service: the reporter runs
// for the service's lifetime, and every reset sends everything again.
func (p *Plugin) Plug(r *vmtoolsd.Registry) {
	r.Go("guestinfo", p.Run)
	r.OnReset(p.Reset)
}

// ErrNoAddress is returned by PrimaryIP when no reported NIC has an
// address.
var ErrNoAddress = errors.New("infosync: no address on any reported NIC")

// Run runs the reporter until ctx ends.
func (p *Plugin) Run(ctx context.Context) error { return p.Reporter.Run(ctx) }

// Reset clears the reporter's cache and fallback ladders after a TCLO
// reset, so that everything is sent again.
func (p *Plugin) Reset(ctx context.Context) { p.Reporter.Reset() }

// Update asks for a full gather (after a tools.conf change).
func (p *Plugin) Update() { p.Reporter.Update() }

// PrimaryIP is broadcastIP's answer: the first address of the
// best-ranked reported NIC (guestinfo.PrimaryIP).
func (p *Plugin) PrimaryIP(ctx context.Context) (netip.Addr, error) {
	cfg := p.Config()
	s := p.Collector.PrimaryIP(&cfg)
	if s == "" {
		return netip.Addr{}, ErrNoAddress
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("infosync: primary address %q: %w", s, err)
	}
	return a, nil
}
