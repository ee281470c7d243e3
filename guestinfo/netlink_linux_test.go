package guestinfo

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/govmtools/govmtools/internal/netnstest"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestNetlinkLinksMatchLibrary dumps the links of a namespace scene (a
// veth standing in for the VM's NIC, a bridge with a port, twenty
// container interfaces) with the lean decoder and with
// vishvananda/netlink's full one: they must agree on every fact guest
// info uses, and the gather must report eth0 alone.
func TestNetlinkLinksMatchLibrary(t *testing.T) {
	ok, what := netnstest.Available()
	testutil.Require(t, ok, "network namespaces", what)
	scene, err := netnstest.NewScene(fmt.Sprintf("nl%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer scene.Delete()
	if err := scene.AddInterfaces(20); err != nil {
		t.Fatal(err)
	}
	h, err := netns.GetFromPath(scene.VM.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	src := &Netlink{NS: h}
	defer src.Close()
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	lib, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	full, err := lib.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var want []Link
	for _, l := range full {
		a := l.Attrs()
		kind := l.Type()
		switch kind {
		case "device":
			kind = ""
		case "tuntap":
			kind = "tun"
		}
		want = append(want, Link{Index: a.Index, Name: a.Name, Kind: kind, MasterIndex: a.MasterIndex, MAC: a.HardwareAddr,
			Up: a.Flags&net.FlagUp != 0, Loopback: a.Flags&net.FlagLoopback != 0})
	}
	if len(want) != 24 || !reflect.DeepEqual(snap.Links, want) {
		t.Fatalf("links differ from vishvananda/netlink's:\n got %+v\nwant %+v", snap.Links, want)
	}
	kinds := map[string]int{}
	for _, l := range snap.Links {
		kinds[l.Kind]++
	}
	if kinds["veth"] != 18 || kinds["bridge"] != 5 || kinds[""] != 1 {
		t.Errorf("kinds %v", kinds)
	}
	cfg := DefaultConfig()
	cfg.ExcludeNICs = []string{}
	if res := BuildNicInfo(snap, &cfg, nil); !slices.Equal(res.Names, []string{"eth0"}) {
		t.Errorf("reported %v, want eth0 alone\n%s", res.Names, Explain(snap, &cfg))
	}
}

// ifinfo builds an RTM_NEWLINK payload: an ifinfomsg and attributes.
func ifinfo(index int32, flags uint32, attrs ...[]byte) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rtattr(typ uint16, v []byte) []byte {
	n := unix.SizeofRtAttr + len(v)
	b := make([]byte, (n+3)&^3)
	binary.NativeEndian.PutUint16(b, uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], v)
	return b
}

func TestParseLink(t *testing.T) {
	master := make([]byte, 4)
	binary.NativeEndian.PutUint32(master, 7)
	msg := ifinfo(3, unix.IFF_UP,
		rtattr(unix.IFLA_IFNAME, []byte("vethc0\x00")),
		rtattr(unix.IFLA_ADDRESS, []byte{0x6a, 0x1f, 0, 0, 0, 2}),
		rtattr(unix.IFLA_MASTER, master),
		rtattr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, rtattr(unix.IFLA_INFO_KIND, []byte("veth\x00"))),
		rtattr(unix.IFLA_MTU, []byte{0xdc, 5, 0, 0}),
	)
	l, ok := parseLink(msg)
	want := Link{Index: 3, Name: "vethc0", Kind: "veth", MasterIndex: 7, MAC: net.HardwareAddr{0x6a, 0x1f, 0, 0, 0, 2}, Up: true}
	if !ok || !reflect.DeepEqual(l, want) {
		t.Fatalf("%+v %v", l, ok)
	}
	// A truncated attribute ends the parse without a panic.
	if l, ok := parseLink(append(ifinfo(4, 0, rtattr(unix.IFLA_IFNAME, []byte("lo\x00"))), 0xff, 0x00, 3, 0)); !ok || l.Name != "lo" {
		t.Fatalf("%+v %v", l, ok)
	}
	if _, ok := parseLink(make([]byte, 8)); ok {
		t.Fatal("a short ifinfomsg parsed")
	}
}

// FuzzParseLink: no kernel message may crash the link decoder.
func FuzzParseLink(f *testing.F) {
	f.Add(ifinfo(2, unix.IFF_UP, rtattr(unix.IFLA_IFNAME, []byte("eth0\x00")), rtattr(unix.IFLA_ADDRESS, []byte{0, 0x50, 0x56, 0xaa, 0xbb, 1}),
		rtattr(unix.IFLA_LINKINFO|unix.NLA_F_NESTED, rtattr(unix.IFLA_INFO_KIND, []byte("veth\x00")))))
	f.Add(make([]byte, unix.SizeofIfInfomsg+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseLink(b)
	})
}
