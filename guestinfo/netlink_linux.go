package guestinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netlink is the NetSource of the running kernel: rtnetlink dumps of
// links, addresses and main-table routes, in the network namespace NS (or
// the caller's when NS is not set).
//
// It uses github.com/vishvananda/netlink, which opens sockets in another
// namespace without moving the process (so tests and benchmarks can watch
// a namespace they created) and decodes addresses and routes. Links are
// dumped on a socket of their own and only the attributes guest info
// uses are read (name, hardware address, master, IFLA_INFO_KIND), without
// statistics (RTEXT_FILTER_SKIP_STATS): on a container host the link dump
// is most of a gather's cost, and decoding every attribute of a thousand
// links doubled it.
type Netlink struct {
	// NS, if open (see netns.GetFromName), is the namespace to watch.
	NS netns.NsHandle

	mu sync.Mutex
	h  *netlink.Handle
	ls *nl.NetlinkSocket // link dumps
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

func (n *Netlink) linkSocket() (*nl.NetlinkSocket, error) {
	if n.ls != nil {
		return n.ls, nil
	}
	ns := n.NS
	if !ns.IsOpen() {
		ns = netns.None()
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("guestinfo: netlink: %w", err)
	}
	tv := unix.NsecToTimeval(int64(dumpTimeout))
	s.SetReceiveTimeout(&tv)
	n.ls = s
	return s, nil
}

// dumpTimeout bounds one dump: the kernel answers at once, so a silent
// socket is a broken one.
const dumpTimeout = 10 * time.Second

// Close releases the netlink sockets.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeSockets()
	return nil
}

func (n *Netlink) closeSockets() {
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.ls != nil {
		n.ls.Close()
		n.ls = nil
	}
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
	ls, err := n.linkSocket()
	if err != nil {
		return nil, err
	}
	var snap *NetSnapshot
	for range 3 {
		snap, err = dump(h, ls)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		// A socket may be broken; open new ones next time.
		n.closeSockets()
		return nil, err
	}
	return snap, nil
}

func dump(h *netlink.Handle, ls *nl.NetlinkSocket) (*NetSnapshot, error) {
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
	links, err := dumpLinks(ls)
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
		Links:  links,
		Addrs:  make([]Addr, 0, len(addrs)),
		Routes: make([]RouteFact, 0, len(routes)),
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

// rtextFilterSkipStats is RTEXT_FILTER_SKIP_STATS (linux/rtnetlink.h).
const rtextFilterSkipStats = 1 << 3

// dumpLinks dumps the links (RTM_GETLINK) and decodes what Link holds. It
// returns netlink.ErrDumpInterrupted with the links when the kernel marks
// the dump inconsistent (the configuration changed meanwhile).
func dumpLinks(s *nl.NetlinkSocket) ([]Link, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(rtextFilterSkipStats)))
	if err := s.Send(req); err != nil {
		return nil, err
	}
	var d linkDump
	for {
		msgs, _, err := s.Receive()
		if err != nil {
			return nil, err
		}
		if done, err := d.add(msgs, req.Seq); done || err != nil {
			return d.links, err
		}
	}
}

// parseLink decodes an ifinfomsg and the attributes guest info reads.
func parseLink(b []byte) (Link, bool) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, false
	}
	ne := nl.NativeEndian()
	flags := ne.Uint32(b[8:12])
	l := Link{
		Index:    int(int32(ne.Uint32(b[4:8]))),
		Up:       flags&unix.IFF_UP != 0,
		Loopback: flags&unix.IFF_LOOPBACK != 0,
	}
	for typ, v := range attrs(b[unix.SizeofIfInfomsg:]) {
		switch typ {
		case unix.IFLA_IFNAME:
			l.Name = cString(v)
		case unix.IFLA_ADDRESS:
			if slices.ContainsFunc(v, func(c byte) bool { return c != 0 }) { // all zeros: none
				l.MAC = net.HardwareAddr(bytes.Clone(v))
			}
		case unix.IFLA_MASTER:
			if len(v) >= 4 {
				l.MasterIndex = int(ne.Uint32(v))
			}
		case unix.IFLA_LINKINFO:
			for t, kv := range attrs(v) {
				if t == unix.IFLA_INFO_KIND {
					l.Kind = cString(kv)
				}
			}
		}
	}
	return l, true
}

// attrs yields the netlink attributes in b (type without the nested and
// byte-order flags, value); it stops at the first malformed one.
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		ne := nl.NativeEndian()
		for len(b) >= unix.SizeofRtAttr {
			n := int(ne.Uint16(b[0:2]))
			if n < unix.SizeofRtAttr || n > len(b) {
				return
			}
			if !yield(ne.Uint16(b[2:4])&nlaTypeMask, b[unix.SizeofRtAttr:n]) {
				return
			}
			b = b[min((n+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1), len(b)):]
		}
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// nlaTypeMask clears NLA_F_NESTED and NLA_F_NET_BYTEORDER from an
// attribute type (NLA_TYPE_MASK).
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// linkDump collects the answers to one RTM_GETLINK dump.
type linkDump struct {
	links       []Link
	interrupted error
}

// add takes one batch of messages of the dump with sequence number seq;
// done reports the end of the dump, err a failed or inconsistent one
// (netlink.ErrDumpInterrupted, with the links).
func (d *linkDump) add(msgs []syscall.NetlinkMessage, seq uint32) (done bool, err error) {
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue // a late answer to an abandoned dump
		}
		if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
			d.interrupted = netlink.ErrDumpInterrupted
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if errno := int32(nl.NativeEndian().Uint32(m.Data)); errno < 0 {
					d.links = nil
					return true, unix.Errno(-errno)
				}
			}
			return true, d.interrupted
		case unix.RTM_NEWLINK:
			if l, ok := parseLink(m.Data); ok {
				d.links = append(d.links, l)
			}
		}
	}
	return false, nil
}
