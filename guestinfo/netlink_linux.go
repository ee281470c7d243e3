package guestinfo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netlink is the NetSource of the running kernel: rtnetlink dumps of
// links, addresses and main-table routes, in the network namespace NS (or
// the caller's when NS is not set).
//
// It uses github.com/vishvananda/netlink, which decodes every link kind
// (IFLA_INFO_KIND, master, hardware address) and opens sockets in another
// namespace without moving the process, so tests and benchmarks can
// watch a namespace they created.
type Netlink struct {
	// NS, if open (see netns.GetFromName), is the namespace to watch.
	NS netns.NsHandle

	mu sync.Mutex
	h  *netlink.Handle
}

// NewNetlink returns a source for the caller's namespace.
func NewNetlink() *Netlink { return &Netlink{NS: netns.None()} }

func (n *Netlink) handle() (*netlink.Handle, error) {
	if n.h != nil {
		return n.h, nil
	}
	var h *netlink.Handle
	var err error
	if n.NS.IsOpen() {
		h, err = netlink.NewHandleAt(n.NS, unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("guestinfo: netlink: %w", err)
	}
	n.h = h
	return h, nil
}

// Close releases the netlink socket.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	return nil
}

// Snapshot dumps links, addresses and routes. A dump the kernel marks as
// interrupted (the configuration changed meanwhile) is retried.
func (n *Netlink) Snapshot() (*NetSnapshot, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	var snap *NetSnapshot
	for range 3 {
		snap, err = dump(h)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		// The socket may be broken; open a new one next time.
		n.h.Close()
		n.h = nil
		return nil, err
	}
	return snap, nil
}

func dump(h *netlink.Handle) (*NetSnapshot, error) {
	var interrupted error
	note := func(what string, err error) error {
		if errors.Is(err, netlink.ErrDumpInterrupted) {
			interrupted = err
			return nil
		}
		if err != nil {
			return fmt.Errorf("guestinfo: netlink %s: %w", what, err)
		}
		return nil
	}
	links, err := h.LinkList()
	if err := note("links", err); err != nil {
		return nil, err
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err := note("addresses", err); err != nil {
		return nil, err
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err := note("routes", err); err != nil {
		return nil, err
	}
	snap := &NetSnapshot{
		Links:  make([]Link, 0, len(links)),
		Addrs:  make([]Addr, 0, len(addrs)),
		Routes: make([]RouteFact, 0, len(routes)),
	}
	for _, l := range links {
		a := l.Attrs()
		kind := l.Type()
		switch kind {
		case "device":
			kind = ""
		case "tuntap":
			kind = "tun"
		}
		snap.Links = append(snap.Links, Link{
			Index:       a.Index,
			Name:        a.Name,
			Kind:        kind,
			MasterIndex: a.MasterIndex,
			MAC:         a.HardwareAddr,
			Up:          a.Flags&net.FlagUp != 0,
			Loopback:    a.Flags&net.FlagLoopback != 0,
		})
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		ip = ip.Unmap()
		snap.Addrs = append(snap.Addrs, Addr{
			LinkIndex: a.LinkIndex,
			Prefix:    netip.PrefixFrom(ip, ones),
			Flags:     uint32(a.Flags),
			ValidLft:  uint32(a.ValidLft),
		})
	}
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		dst := defaultPrefix(r.Family)
		if r.Dst != nil {
			ip, ok := netip.AddrFromSlice(r.Dst.IP)
			if !ok {
				continue
			}
			ones, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(ip.Unmap(), ones)
		}
		if !dst.IsValid() {
			continue
		}
		add := func(link int, gw net.IP) {
			g, _ := netip.AddrFromSlice(gw)
			snap.Routes = append(snap.Routes, RouteFact{LinkIndex: link, Dst: dst, Gw: g.Unmap(), Metric: uint32(r.Priority)})
		}
		if len(r.MultiPath) > 0 {
			for _, nh := range r.MultiPath {
				add(nh.LinkIndex, nh.Gw)
			}
			continue
		}
		add(r.LinkIndex, r.Gw)
	}
	return snap, interrupted
}

func defaultPrefix(family int) netip.Prefix {
	switch family {
	case unix.AF_INET:
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case unix.AF_INET6:
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.Prefix{}
}

// Watch calls changed after each batch of link, address or route
// notifications (and after a receive-buffer overflow, which means events
// were lost), until ctx ends. It returns nil on cancellation.
func (n *Netlink) Watch(ctx context.Context, changed func()) error {
	groups := []uint{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE}
	var s *nl.NetlinkSocket
	var err error
	if n.NS.IsOpen() {
		s, err = nl.SubscribeAt(n.NS, netns.None(), unix.NETLINK_ROUTE, groups...)
	} else {
		s, err = nl.Subscribe(unix.NETLINK_ROUTE, groups...)
	}
	if err != nil {
		return fmt.Errorf("guestinfo: netlink subscribe: %w", err)
	}
	stop := context.AfterFunc(ctx, s.Close)
	defer func() {
		if stop() {
			s.Close()
		}
	}()
	for {
		msgs, _, err := s.Receive()
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			changed()
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("guestinfo: netlink receive: %w", err)
		}
		if len(msgs) > 0 {
			changed()
		}
	}
}
