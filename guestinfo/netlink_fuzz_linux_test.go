package guestinfo

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nlmsg frames one netlink message.
func nlmsg(typ uint16, flags uint16, seq uint32, data []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(unix.SizeofNlMsghdr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// FuzzLinkDump: any batch of kernel messages, split into receives at
// the fuzzer's choice, ends the dump loop with links, an errno or
// ErrDumpInterrupted, or asks for more; it never panics.
func FuzzLinkDump(f *testing.F) {
	link := ifinfo(2, unix.IFF_UP, rtattr(unix.IFLA_IFNAME, []byte("eth0\x00")))
	f.Add(append(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, 7, link), nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 7, make([]byte, 4))...), uint8(1))
	f.Add(nlmsg(unix.NLMSG_ERROR, 0, 7, binary.NativeEndian.AppendUint32(nil, uint32(0x100000000-int64(unix.EBUSY)))), uint8(0))
	f.Add(append(nlmsg(unix.RTM_NEWLINK, unix.NLM_F_DUMP_INTR, 7, link), nlmsg(unix.NLMSG_DONE, 0, 7, nil)...), uint8(2))
	f.Add(nlmsg(unix.RTM_NEWLINK, 0, 6, link), uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		msgs, err := syscall.ParseNetlinkMessage(b)
		if err != nil {
			return
		}
		var d linkDump
		for i := 0; i < len(msgs); {
			n := min(len(msgs)-i, int(split%4)+1)
			done, err := d.add(msgs[i:i+n], 7)
			i += n
			if done {
				var errno unix.Errno
				if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.As(err, &errno) {
					t.Fatalf("dump ended with %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("not done, but %v", err)
			}
		}
	})
}
