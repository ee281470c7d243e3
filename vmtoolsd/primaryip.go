package vmtoolsd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path"

	"github.com/govmtools/govmtools/guestinfo"
)

// InterfaceIP is the default PrimaryIPer: the first global unicast
// address of an up, non-loopback interface whose name is not a
// container or bridge interface (open-vm-tools' default exclude-nics),
// IPv4 preferred. The guest-info reporter replaces it with a chooser
// ranked by the default route.
type InterfaceIP struct {
	// Exclude are name globs to skip; nil means
	// guestinfo.DefaultExcludeNICs().
	Exclude []string
}

// ErrNoAddress is returned when no interface has a usable address.
var ErrNoAddress = errors.New("vmtoolsd: no global unicast address on any interface")

// PrimaryIP returns the chosen address.
func (p InterfaceIP) PrimaryIP(ctx context.Context) (netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	exclude := p.Exclude
	if exclude == nil {
		exclude = guestinfo.DefaultExcludeNICs()
	}
	var v6 netip.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || excluded(ifc.Name, exclude) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr().Unmap()
			if !ip.IsGlobalUnicast() {
				continue
			}
			if ip.Is4() {
				return ip, nil
			}
			if !v6.IsValid() {
				v6 = ip
			}
		}
	}
	if v6.IsValid() {
		return v6, nil
	}
	return netip.Addr{}, ErrNoAddress
}

func excluded(name string, globs []string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}
