package toolboxcmd

import (
	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/vmtoolsd/infosync"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// info is `info update network`: the NIC list, routes and DNS settings
// sent to the host at once, as SetGuestInfo type 10 (NicInfo V3), the
// message vmtoolsd's guest-info reporter sends when they change.
// Failures go to the log only, and the exit code is 1.
func (r *run) info() int {
	a := r.args[1:]
	if len(a) < 2 {
		return r.missing("info infoclass")
	}
	if a[0] != "update" {
		return r.unknown("subcommand", a[0])
	}
	if a[1] != "network" {
		return r.unknown("info infoclass", a[1])
	}
	if r.NicInfo == nil {
		return ExitFailure
	}
	k, _ := r.loadConf()
	payload, err := r.NicInfo(k.parsed())
	if err != nil {
		return ExitFailure
	}
	if _, ok := r.rpcReply(string(infoproto.BinaryMessage(infoproto.InfoIPAddressV3, payload))); !ok {
		return ExitFailure
	}
	return ExitOK
}

// NicInfo is Env.NicInfo for this machine: the network namespace's NICs
// through netlink, the host name and resolv.conf, with the limits of
// tools.conf's [guestinfo] group, trimmed to fit one message.
func NicInfo(conf *toolsconf.File) ([]byte, error) {
	nl := guestinfo.NewNetlink()
	defer nl.Close()
	col := &guestinfo.Collector{Sys: &guestinfo.System{}, Net: nl}
	host, _ := col.Hostname()
	cfg := infosync.Config(conf)
	res, err := col.NicInfo(&cfg, host)
	if err != nil {
		return nil, err
	}
	budget := infoproto.MaxMessage - len(infoproto.BinaryPrefix(infoproto.InfoIPAddressV3))
	fit, _ := infoproto.FitNicInfo(res.Info, budget)
	return infoproto.EncodeNicInfo(fit)
}
