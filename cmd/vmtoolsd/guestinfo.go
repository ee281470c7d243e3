package main

import (
	"fmt"
	"log/slog"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/report"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/guestinfoplugin"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// newGuestInfo builds the guest-info feature: the reporter watching this
// network namespace through netlink, and the host name, os-release and
// resolv.conf through the kernel's notifications, sending over rpci, with
// its settings read from tools.conf at every gather. The returned function
// releases the netlink socket.
func newGuestInfo(conf *toolsconf.Watcher, rpci report.Sender, logger *slog.Logger) (*guestinfoplugin.Plugin, func()) {
	nl := guestinfo.NewNetlink()
	sys := &guestinfo.System{}
	col := &guestinfo.Collector{Sys: sys, Net: nl}
	cfg := func() guestinfo.Config { return guestinfoplugin.Config(conf.Current()) }
	p := &guestinfoplugin.Plugin{
		Reporter: &report.Reporter{
			Sender:      rpci,
			Source:      col,
			Watcher:     nl,
			HostWatcher: &guestinfo.HostWatch{Sys: sys},
			Config:      cfg,
			BuildNumber: fmt.Sprintf("build-%d", vmtoolsd.DefaultVersion().Build),
			Logger:      logger,
		},
		Collector: col,
		Config:    cfg,
	}
	return p, func() { nl.Close() }
}
