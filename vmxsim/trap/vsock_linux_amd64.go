//go:build linux && amd64

package trap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// The vsock trap (Config.VSock; docs/vmxsim.md, "vsock under the trap").
// No AF_VSOCK socket is ever created: at the seccomp stop of
// socket(AF_VSOCK, type, 0) the tracer rewrites the domain to AF_UNIX and
// records the new socket, by inode, at the call's exit stop. The calls that
// take a vsock address on such a socket never reach the kernel: the tracer
// emulates them and skips them with the result vsock would give.
//   - bind records the port after the kernel's checks: EINVAL if bound,
//     EADDRNOTAVAIL for a CID that is not ours or a datagram socket,
//     EACCES below 1024 without CAP_NET_BIND_SERVICE, EADDRINUSE for a
//     port a live trapped socket holds; PORT_ANY picks one above 1023.
//   - connect asks VSockHost.Endpoint; on a unix path the tracer takes a
//     copy of the program's socket (pidfd_getfd), connects it there,
//     writes the vmx.VSockPreamble (the address pair, so the VMX knows the
//     source port) and returns 0 to the program; an unbound socket is
//     bound to a port above 1023 first, as vsock auto-binds.
//   - getsockname and getpeername answer sockaddr_vm values; the vsock
//     socket options and SO_DOMAIN are answered too; the /dev/vsock
//     ioctls answer the guest CID (GET_LOCAL_CID) and ENOTTY
//     (VMCI_SOCKETS_GET_AF_VALUE, unknown to mainline vsock).
// Everything else (read, write, send, poll, close, SO_SNDBUF...) runs
// natively on the unix socket. A socket(AF_VSOCK) the tracer does not
// rewrite is skipped with EAFNOSUPPORT; when the tracer cannot change the
// registers it kills the process, which then dies before the call runs.

// vsockSock is one trapped AF_VSOCK socket.
type vsockSock struct {
	typ               int
	bound, connected  bool
	cid, port         uint32 // local address once bound
	peerCID, peerPort uint32
}

type vsockState struct {
	host     VSockHost
	cid      uint32
	socks    map[uint64]*vsockSock // by socket inode
	nextPort uint32
}

// Ports and CIDs of sockaddr_vm.
const (
	vmaddrAny     = 0xFFFFFFFF // VMADDR_CID_ANY, VMADDR_PORT_ANY
	vmaddrLocal   = 1          // VMADDR_CID_LOCAL
	lastReserved  = 1023       // LAST_RESERVED_PORT
	firstDynamic  = 49152
	capNetBindSvc = 10 // CAP_NET_BIND_SERVICE
)

func newVSockState(h *VSockHost) *vsockState {
	if h == nil {
		return nil
	}
	cid := h.GuestCID
	if cid == 0 {
		cid = DefaultGuestCID
	}
	return &vsockState{host: *h, cid: cid, socks: map[uint64]*vsockSock{}, nextPort: firstDynamic}
}

// vsockCall handles the seccomp stop of a vsock-related call; true means
// resume with PTRACE_SYSCALL (a rewritten socket call).
func (t *tracer) vsockCall(th *thread, regs *unix.PtraceRegs) bool {
	switch regs.Orig_rax {
	case unix.SYS_SOCKET:
		return t.vsockSocket(th, regs)
	case unix.SYS_BIND, unix.SYS_CONNECT:
		if t.vs != nil {
			t.vsockAddrCall(th, regs)
		}
	case unix.SYS_GETSOCKNAME, unix.SYS_GETPEERNAME:
		if t.vs != nil {
			t.vsockName(th, regs)
		}
	case unix.SYS_GETSOCKOPT, unix.SYS_SETSOCKOPT:
		if t.vs != nil {
			t.vsockOpt(th, regs)
		}
	case unix.SYS_IOCTL:
		if t.vs != nil {
			t.vsockIoctl(th, regs)
		}
	}
	return false
}

// skip makes the stopped call return ret without running it; if the
// registers cannot be set the process is killed (it dies before the call).
func (t *tracer) skip(th *thread, regs *unix.PtraceRegs, ret int64) {
	regs.Orig_rax = ^uint64(0)
	regs.Rax = uint64(ret)
	if err := unix.PtraceSetRegs(th.tid, regs); err != nil {
		t.failSafe(th, "a vsock call", err)
	}
}

func (t *tracer) fail(th *thread, regs *unix.PtraceRegs, e unix.Errno) { t.skip(th, regs, -int64(e)) }

func (t *tracer) vsockSocket(th *thread, regs *unix.PtraceRegs) bool {
	if uint32(regs.Rdi) != unix.AF_VSOCK {
		return false
	}
	if t.vs == nil {
		t.fail(th, regs, unix.EAFNOSUPPORT)
		return false
	}
	arg := uint32(regs.Rsi)
	typ := int(arg & 0xF)
	switch {
	case arg&^uint32(0xF|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0:
		t.fail(th, regs, unix.EINVAL)
		return false
	case typ != unix.SOCK_STREAM && typ != unix.SOCK_DGRAM && typ != unix.SOCK_SEQPACKET:
		t.fail(th, regs, unix.ESOCKTNOSUPPORT)
		return false
	case uint32(regs.Rdx) != 0 && uint32(regs.Rdx) != unix.AF_VSOCK:
		t.fail(th, regs, unix.EPROTONOSUPPORT)
		return false
	}
	regs.Rdi = unix.AF_UNIX
	regs.Rdx = 0
	if err := unix.PtraceSetRegs(th.tid, regs); err != nil {
		t.failSafe(th, "socket(AF_VSOCK)", err)
		return false
	}
	th.socketExit = &vsockSock{typ: typ}
	t.stats.VSockSockets.Add(1)
	return true
}

// syscallExit handles the exit stop of a rewritten socket call.
func (t *tracer) syscallExit(th *thread) {
	s := th.socketExit
	th.socketExit = nil
	var regs unix.PtraceRegs
	if s == nil || t.vs == nil || unix.PtraceGetRegs(th.tid, &regs) != nil || int64(regs.Rax) < 0 {
		return
	}
	if ino, err := fdInode(th.tid, int(regs.Rax)); err == nil {
		t.vs.socks[ino] = s
	}
}

// lookup returns the trapped socket behind fd, if it is one.
func (t *tracer) lookup(th *thread, fd uint64) *vsockSock {
	ino, err := fdInode(th.tid, int(int32(fd)))
	if err != nil {
		return nil
	}
	return t.vs.socks[ino]
}

// vsockAddr reads the 16-byte sockaddr_vm at addr. ok is false when the
// address is not AF_VSOCK (the call then runs unchanged: it is not one the
// trap owns).
func (t *tracer) vsockAddr(th *thread, addr, n uint64) (cid, port uint32, short, ok bool) {
	var b [16]byte
	if n < 2 || th.proc.mem == nil {
		return 0, 0, false, false
	}
	m := min(n, 16)
	if _, err := th.proc.mem.ReadAt(b[:m], int64(addr)); err != nil || binary.LittleEndian.Uint16(b[:]) != unix.AF_VSOCK {
		return 0, 0, false, false
	}
	return binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[4:]), n < 16, true
}

func (t *tracer) vsockAddrCall(th *thread, regs *unix.PtraceRegs) {
	cid, port, short, ok := t.vsockAddr(th, regs.Rsi, uint64(uint32(regs.Rdx)))
	if !ok {
		return
	}
	s := t.lookup(th, regs.Rdi)
	if s == nil {
		return // a vsock address on another socket: the kernel refuses it
	}
	if short {
		t.fail(th, regs, unix.EINVAL)
		return
	}
	var e unix.Errno
	if regs.Orig_rax == unix.SYS_BIND {
		e = t.vs.bind(th, s, cid, port)
	} else {
		e = t.vsockConnect(th, regs, s, cid, port)
	}
	t.skip(th, regs, -int64(e))
}

func (vs *vsockState) bind(th *thread, s *vsockSock, cid, port uint32) unix.Errno {
	switch {
	case s.bound:
		return unix.EINVAL
	case s.typ != unix.SOCK_STREAM:
		// Datagram users (the gdp plugin) are out of scope.
		return unix.EADDRNOTAVAIL
	case cid != vmaddrAny && cid != vs.cid && cid != vmaddrLocal:
		return unix.EADDRNOTAVAIL
	}
	if port == vmaddrAny {
		p, ok := vs.ephemeral(th)
		if !ok {
			return unix.EADDRNOTAVAIL
		}
		port = p
	} else {
		if port <= lastReserved && !hasCap(th.tid, capNetBindSvc) {
			return unix.EACCES
		}
		if vs.inUse(th, port) {
			return unix.EADDRINUSE
		}
	}
	s.bound, s.cid, s.port = true, cid, port
	return 0
}

// ephemeral picks a free port above 1023.
func (vs *vsockState) ephemeral(th *thread) (uint32, bool) {
	for range 65535 - lastReserved {
		p := vs.nextPort
		if vs.nextPort++; vs.nextPort > 0xFFFF {
			vs.nextPort = lastReserved + 1
		}
		if !vs.inUse(th, p) {
			return p, true
		}
	}
	return 0, false
}

// inUse reports whether a live trapped socket holds port; entries of
// sockets closed since are dropped.
func (vs *vsockState) inUse(th *thread, port uint32) bool {
	var live map[uint64]bool
	for ino, o := range vs.socks {
		if !o.bound || o.port != port {
			continue
		}
		if live == nil {
			live = unixInodes(th.tid)
		}
		if live[ino] {
			return true
		}
		delete(vs.socks, ino)
	}
	return false
}

func (t *tracer) vsockConnect(th *thread, regs *unix.PtraceRegs, s *vsockSock, cid, port uint32) unix.Errno {
	switch {
	case s.connected:
		return unix.EISCONN
	case s.typ != unix.SOCK_STREAM:
		return unix.ENETUNREACH
	}
	if !s.bound {
		p, ok := t.vs.ephemeral(th)
		if !ok {
			return unix.EADDRNOTAVAIL
		}
		s.bound, s.cid, s.port = true, vmaddrAny, p
	}
	path, e := t.vs.host.Endpoint(cid, port)
	if e == 0 {
		pre := vmx.VSockPreamble{DstCID: cid, DstPort: port, SrcCID: t.vs.cid, SrcPort: s.port}
		e = dialFor(th.proc.tgid, int(int32(regs.Rdi)), path, pre.Encode())
	}
	if e != 0 {
		t.stats.VSockRefused.Add(1)
		t.lg.Debug("trap: vsock connect refused", "pid", th.tid, "cid", cid, "port", port, "err", e)
		return e
	}
	s.connected, s.peerCID, s.peerPort = true, cid, port
	t.stats.VSockConnects.Add(1)
	t.lg.Debug("trap: vsock connect", "pid", th.tid, "cid", cid, "port", port, "from", s.port)
	return 0
}

// dialFor connects the program's socket fd to path and writes pre on it,
// from a copy of the socket in this process, so the program's memory is
// never written. A missing listener is ECONNRESET, as the VMX resets a
// connection to a port nobody listens on.
func dialFor(tgid, fd int, path string, pre []byte) unix.Errno {
	pidfd, err := unix.PidfdOpen(tgid, 0)
	if err != nil {
		return unix.ECONNRESET
	}
	defer unix.Close(pidfd)
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return unix.EBADF
	}
	defer unix.Close(dup)
	for {
		err = unix.Connect(dup, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	switch err {
	case nil:
	case unix.ECONNREFUSED, unix.ENOENT:
		return unix.ECONNRESET
	default:
		if e, ok := err.(unix.Errno); ok {
			return e
		}
		return unix.ECONNRESET
	}
	for len(pre) > 0 {
		n, err := unix.Write(dup, pre)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return unix.ECONNRESET
		}
		pre = pre[n:]
	}
	return 0
}

// vsockName answers getsockname and getpeername on a trapped socket.
func (t *tracer) vsockName(th *thread, regs *unix.PtraceRegs) {
	s := t.lookup(th, regs.Rdi)
	if s == nil {
		return
	}
	cid, port := uint32(vmaddrAny), uint32(vmaddrAny)
	switch {
	case regs.Orig_rax == unix.SYS_GETPEERNAME:
		if !s.connected {
			t.fail(th, regs, unix.ENOTCONN)
			return
		}
		cid, port = s.peerCID, s.peerPort
	case s.bound:
		cid, port = s.cid, s.port
		if cid == vmaddrAny && s.connected {
			cid = t.vs.cid
		}
	}
	sa := make([]byte, 16)
	binary.LittleEndian.PutUint16(sa, unix.AF_VSOCK)
	binary.LittleEndian.PutUint32(sa[4:], port)
	binary.LittleEndian.PutUint32(sa[8:], cid)
	t.skip(th, regs, -int64(t.valueResult(th, regs.Rsi, regs.Rdx, sa)))
}

// valueResult writes v to buf as the kernel writes a value-result
// argument: at most *lenp bytes, and *lenp set to len(v).
func (t *tracer) valueResult(th *thread, buf, lenp uint64, v []byte) unix.Errno {
	var lb [4]byte
	if th.proc.mem == nil {
		return unix.EFAULT
	}
	if _, err := th.proc.mem.ReadAt(lb[:], int64(lenp)); err != nil {
		return unix.EFAULT
	}
	n := int32(binary.LittleEndian.Uint32(lb[:]))
	if n < 0 {
		return unix.EINVAL
	}
	if m := min(int(n), len(v)); m > 0 {
		if _, err := th.proc.mem.WriteAt(v[:m], int64(buf)); err != nil {
			return unix.EFAULT
		}
	}
	binary.LittleEndian.PutUint32(lb[:], uint32(len(v)))
	if _, err := th.proc.mem.WriteAt(lb[:], int64(lenp)); err != nil {
		return unix.EFAULT
	}
	return 0
}

// vsockOpt answers the vsock-level socket options and SO_DOMAIN on a
// trapped socket. Setting a vsock option succeeds without effect.
func (t *tracer) vsockOpt(th *thread, regs *unix.PtraceRegs) {
	s := t.lookup(th, regs.Rdi)
	if s == nil {
		return
	}
	level, opt := int(int32(regs.Rsi)), int(int32(regs.Rdx))
	set := regs.Orig_rax == unix.SYS_SETSOCKOPT
	var v []byte
	switch {
	case level == unix.SOL_SOCKET && opt == unix.SO_DOMAIN:
		if set {
			t.fail(th, regs, unix.ENOPROTOOPT)
			return
		}
		v = binary.LittleEndian.AppendUint32(nil, unix.AF_VSOCK)
	case set:
		t.skip(th, regs, 0)
		return
	case opt <= unix.SO_VM_SOCKETS_BUFFER_MAX_SIZE: // buffer size, min, max
		sizes := [...]uint64{262144, 128, 262144}
		v = binary.LittleEndian.AppendUint64(nil, sizes[max(opt, 0)])
	case opt == unix.SO_VM_SOCKETS_CONNECT_TIMEOUT_OLD:
		v = make([]byte, 16) // struct timeval: 2 s
		binary.LittleEndian.PutUint64(v, 2)
	default:
		t.fail(th, regs, unix.ENOPROTOOPT)
		return
	}
	t.skip(th, regs, -int64(t.valueResult(th, regs.R10, regs.R8, v)))
}

// vsockIoctl answers the VMCI socket ioctls on /dev/vsock, which the
// program opened for real (opening the device has no effect).
func (t *tracer) vsockIoctl(th *thread, regs *unix.PtraceRegs) {
	path, err := fdPath(th.tid, int(int32(regs.Rdi)))
	if err != nil || path != "/dev/vsock" {
		return
	}
	if uint32(regs.Rsi) != vmciGetLocalCID {
		t.fail(th, regs, unix.ENOTTY) // mainline vsock knows only GET_LOCAL_CID
		return
	}
	v := binary.LittleEndian.AppendUint32(nil, t.vs.cid)
	if th.proc.mem == nil {
		t.fail(th, regs, unix.EFAULT)
		return
	}
	if _, err := th.proc.mem.WriteAt(v, int64(regs.Rdx)); err != nil {
		t.fail(th, regs, unix.EFAULT)
		return
	}
	t.skip(th, regs, 0)
}

// fdInode returns the inode of the socket at fd in tid's process.
func fdInode(tid, fd int) (uint64, error) {
	p, err := fdPath(tid, fd)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(p, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, fmt.Errorf("fd %d is %s, not a socket", fd, p)
	}
	return strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
}

// unixInodes returns the inodes of the live unix sockets of tid's network
// namespace.
func unixInodes(tid int) map[uint64]bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/unix", tid))
	live := map[uint64]bool{}
	for i, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if i == 0 || len(f) < 7 {
			continue
		}
		if ino, err := strconv.ParseUint(f[6], 10, 64); err == nil {
			live[ino] = true
		}
	}
	return live
}

// hasCap reports whether capability bit is in tid's effective set.
func hasCap(tid, bit int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<bit) != 0
		}
	}
	return false
}
