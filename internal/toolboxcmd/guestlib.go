package toolboxcmd

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// guestlib is one reading of the host's resource statistics, as
// open-vm-tools' vmGuestLib gets it: the RPCI "guestlib.info.get 3",
// whose reply is a little-endian header (version, session id, data size)
// and the XDR statistics (ids 1, 2, 3, ... in order).
type guestlib struct {
	session uint64
	stats   map[uint32]guestlibStat
}

type guestlibStat struct {
	valid bool
	u64   uint64
}

// Guestlib errors, with VMGuestLib_GetErrorText's words.
var (
	errGuestlibNotEnabled  = errors.New("VMware Guest API is not enabled on the host")
	errGuestlibOther       = errors.New("Other error")
	errGuestlibUnsupported = errors.New("Host does not support this request.")
	errGuestlibNotAvail    = errors.New("This value is not available on this host")
)

// guestlibStats are the statistics `stat` prints, by subcommand.
var guestlibStats = map[string]struct {
	id         uint32
	fail, unit string
}{
	"balloon":  {12, "Failed to get ballooned memory", " MB"},
	"swap":     {13, "Failed to get swapped memory", " MB"},
	"memlimit": {7, "Failed to get memory limit", " MB"},
	"memres":   {6, "Failed to get memory reservation", " MB"},
	"cpures":   {1, "Failed to get CPU minimum", " MHz"},
	"cpulimit": {2, "Failed to get CPU limit", " MHz"},
}

// readGuestlib asks for version 3, falling back to 2 (which govmtools
// does not decode: it answers "Host does not support this request.")
// as the library does.
func (r *run) readGuestlib() (*guestlib, error) {
	reply, ok := r.rpcReply("guestlib.info.get 3")
	if !ok {
		if reply == "" {
			return nil, errGuestlibOther
		}
		if reply == "Unknown command" {
			return nil, errGuestlibNotEnabled
		}
		if _, ok := r.rpcReply("guestlib.info.get 2"); !ok {
			return nil, errGuestlibNotEnabled
		}
		return nil, errGuestlibUnsupported
	}
	return decodeGuestlib([]byte(reply))
}

// decodeGuestlib decodes a version 3 reply. Like the library it stops
// at the first statistic out of order, and fails then.
func decodeGuestlib(b []byte) (*guestlib, error) {
	if len(b) < 16 || binary.LittleEndian.Uint32(b) != 3 {
		return nil, errGuestlibOther
	}
	g := &guestlib{session: binary.LittleEndian.Uint64(b[4:]), stats: map[uint32]guestlibStat{}}
	size := binary.LittleEndian.Uint32(b[12:])
	data := b[16:]
	if uint64(size) > uint64(len(data)) {
		return nil, errGuestlibOther
	}
	x := xdr{b: data[:size]}
	count := x.u32()
	for id := uint32(1); id <= count && id < 39 && x.err == nil; id++ {
		if x.u32() != id {
			return nil, errGuestlibOther
		}
		st := guestlibStat{valid: x.u32() != 0}
		switch {
		case id == 18:
			x.opaque()
		case id == 37:
			x.opaque()
		case is64(id):
			st.u64 = x.u64()
		default:
			st.u64 = uint64(x.u32())
		}
		g.stats[id] = st
	}
	if x.err != nil {
		return nil, errGuestlibOther
	}
	return g, nil
}

// is64 tells the statistics carried as XDR hypers.
func is64(id uint32) bool {
	switch id {
	case 4, 17, 19, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 38:
		return true
	}
	return false
}

// u32 returns statistic id: an error when the host did not send it (an
// older host) or marked it invalid.
func (g *guestlib) u32(id uint32) (uint32, error) {
	st, ok := g.stats[id]
	switch {
	case !ok:
		return 0, errGuestlibUnsupported
	case !st.valid:
		return 0, errGuestlibNotAvail
	}
	return uint32(st.u64), nil
}

// statGuestlib prints one guestlib value: get returns the failure's
// prefix, the text to print and why the value is not available.
func (r *run) statGuestlib(get func(*guestlib) (fail, text string, err error)) int {
	g, err := r.readGuestlib()
	if err != nil {
		r.printErr("UpdateInfo failed: %s\n", err)
		return ExTempFail
	}
	fail, text, err := get(g)
	if err != nil {
		r.printErr("%s: %s\n", fail, err)
		return ExTempFail
	}
	r.out("%s\n", text)
	return ExitOK
}

// statRaw is `stat raw [ENCODING [STAT [PARAM]]]`: the RPCI
// "guestlib.stat.get ENCODING STAT PARAM" (absent words are empty), its
// reply printed as it came.
func (r *run) statRaw() int {
	arg := func(i int) string {
		if i < len(r.args) {
			return r.args[i]
		}
		return ""
	}
	reply, ok := r.rpcReply("guestlib.stat.get " + arg(2) + " " + arg(3) + " " + arg(4))
	if !ok {
		r.printErr("Failed to get stat: %s\n", errGuestlibNotAvail)
		return ExTempFail
	}
	r.out("%s", reply)
	return ExitOK
}

func hex(v uint64) string  { return strconv.FormatUint(v, 16) }
func utoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// xdr reads big-endian XDR items; the first short read sets err.
type xdr struct {
	b   []byte
	err error
}

func (x *xdr) take(n int) []byte {
	if x.err != nil || len(x.b) < n {
		x.err = errGuestlibOther
		return make([]byte, n)
	}
	p := x.b[:n]
	x.b = x.b[n:]
	return p
}

func (x *xdr) u32() uint32 { return binary.BigEndian.Uint32(x.take(4)) }
func (x *xdr) u64() uint64 { return binary.BigEndian.Uint64(x.take(8)) }

func (x *xdr) opaque() string {
	n := x.u32()
	if x.err != nil || uint64(n) > uint64(len(x.b)) {
		x.err = errGuestlibOther
		return ""
	}
	s := string(x.take(int(n)))
	x.take(int((4 - n%4) % 4))
	return strings.Clone(s)
}
