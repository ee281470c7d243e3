//go:build linux && amd64

package trap

import (
	"encoding/binary"
	"maps"
	"os"
	"testing"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestIsInstructionAt(t *testing.T) {
	// mov eax, 0xA20F; cpuid; ret
	code := []byte{0xB8, 0x0F, 0xA2, 0x00, 0x00, 0x0F, 0xA2, 0xC3}
	if isInstructionAt(code, 1, 0) {
		t.Error("0F A2 inside an immediate taken for cpuid")
	}
	if !isInstructionAt(code, 5, 0) {
		t.Error("the real cpuid not found")
	}
	// Decoding from a later known start finds it too.
	if !isInstructionAt(code, 5, 5) {
		t.Error("cpuid at a function start not found")
	}
}

// TestScanELFSelf scans this test binary: the Go runtime and this package
// execute cpuid, and every offset found must decode as CPUID.
func TestScanELFSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := ScanELF(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.CPUID) < 2 {
		t.Fatalf("found %d cpuid instructions in the test binary", len(info.CPUID))
	}
	for _, off := range info.CPUID {
		var b [16]byte
		f.ReadAt(b[:], int64(off))
		if inst, err := x86asm.Decode(b[:], 64); err != nil || inst.Op != x86asm.CPUID {
			t.Errorf("offset %#x: %v %v", off, inst, err)
		}
	}
	// The dynamic linker has _dl_debug_state, a bare return.
	if ld, err := os.Open("/lib64/ld-linux-x86-64.so.2"); err == nil {
		defer ld.Close()
		info, err := ScanELF(ld)
		if err != nil || info.DebugState == 0 || !info.DebugStateRet || len(info.CPUID) == 0 {
			t.Errorf("ld.so: %+v %v", info, err)
		}
	}
}

func TestEHFrameStarts(t *testing.T) {
	d := []byte{1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 2, 0, 0, 0}
	for _, rel := range []int32{-0x100, 0x40} {
		d = binary.LittleEndian.AppendUint32(d, uint32(rel))
		d = binary.LittleEndian.AppendUint32(d, 0)
	}
	got := ehFrameStarts(d, 0x1000)
	if len(got) != 2 || got[0] != 0xF00 || got[1] != 0x1040 {
		t.Fatalf("starts %#x", got)
	}
	if ehFrameStarts(d[:16], 0x1000) != nil {
		t.Fatal("truncated table accepted")
	}
}

func TestAnswerCPUID(t *testing.T) {
	a, b, c, d := answerCPUID(0x40000000, 0)
	var sig [12]byte
	binary.LittleEndian.PutUint32(sig[0:], b)
	binary.LittleEndian.PutUint32(sig[4:], c)
	binary.LittleEndian.PutUint32(sig[8:], d)
	if string(sig[:]) != "VMwareVMware" || a < 0x40000010 {
		t.Fatalf("leaf 0x40000000: %#x %q", a, sig)
	}
	if _, _, c, _ := answerCPUID(0x40000010, 0); c&3 != 0 {
		t.Fatalf("leaf 0x40000010 advertises VMCALL/VMMCALL: %#x", c)
	}
	if _, _, c, _ := answerCPUID(1, 0); c&(1<<31) == 0 {
		t.Fatal("hypervisor bit clear")
	}
	ra, rb, rc, rd := cpuid(0, 0)
	if a, b, c, d := answerCPUID(0, 0); a != ra || b != rb || c != rc || d != rd {
		t.Fatal("leaf 0 is not the real CPU's")
	}
}

// TestFilter runs the seccomp program in a BPF interpreter on crafted
// seccomp_data: nothing here touches the real calls.
func TestFilter(t *testing.T) {
	vm := filterVM(t, false)
	data := func(arch uint32, nr int, args ...uint64) []byte {
		b := make([]byte, 64)
		binary.LittleEndian.PutUint32(b[0:], uint32(nr))
		binary.LittleEndian.PutUint32(b[4:], arch)
		for i, a := range args {
			binary.LittleEndian.PutUint64(b[16+8*i:], a)
		}
		return b
	}
	// The interpreter reads words big-endian; seccomp_data is native
	// (little-endian), so swap each 32-bit word first.
	swap := func(b []byte) []byte {
		for i := 0; i+4 <= len(b); i += 4 {
			b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
		}
		return b
	}
	const x86 = unix.AUDIT_ARCH_X86_64
	errno := func(e unix.Errno) int { return unix.SECCOMP_RET_ERRNO | int(e) }
	cases := []struct {
		name string
		in   []byte
		want int
	}{
		{"iopl", data(x86, unix.SYS_IOPL, 3), unix.SECCOMP_RET_ERRNO},
		{"ioperm", data(x86, unix.SYS_IOPERM, 0x5658, 2, 1), unix.SECCOMP_RET_ERRNO},
		{"socket vsock", data(x86, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"socket unix", data(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM), unix.SECCOMP_RET_ALLOW},
		{"settimeofday", data(x86, unix.SYS_SETTIMEOFDAY), errno(unix.EPERM)},
		{"clock_settime", data(x86, unix.SYS_CLOCK_SETTIME), errno(unix.EPERM)},
		{"adjtimex", data(x86, unix.SYS_ADJTIMEX), errno(unix.EPERM)},
		{"clock_adjtime", data(x86, unix.SYS_CLOCK_ADJTIME), errno(unix.EPERM)},
		{"reboot", data(x86, unix.SYS_REBOOT, 0xfee1dead), errno(unix.EPERM)},
		{"fifreeze", data(x86, unix.SYS_IOCTL, 3, fifreeze), unix.SECCOMP_RET_TRACE},
		{"fithaw", data(x86, unix.SYS_IOCTL, 3, fithaw), unix.SECCOMP_RET_TRACE},
		{"fifreeze high bits", data(x86, unix.SYS_IOCTL, 3, 0xffffffff00000000|fifreeze), unix.SECCOMP_RET_TRACE},
		{"other ioctl", data(x86, unix.SYS_IOCTL, 3, unix.TCGETS), unix.SECCOMP_RET_ALLOW},
		{"read", data(x86, unix.SYS_READ), unix.SECCOMP_RET_ALLOW},
		{"x32", data(x86, 0x40000000|unix.SYS_IOPL), errno(unix.ENOSYS)},
		{"i386", data(unix.AUDIT_ARCH_I386, 110), errno(unix.ENOSYS)},
		{"socketpair vsock", data(x86, unix.SYS_SOCKETPAIR, unix.AF_VSOCK, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"io_uring_setup", data(x86, unix.SYS_IO_URING_SETUP, 8), errno(unix.ENOSYS)},
		{"connect untraced", data(x86, unix.SYS_CONNECT, 3), unix.SECCOMP_RET_ALLOW},
		{"GET_LOCAL_CID untraced", data(x86, unix.SYS_IOCTL, 3, vmciGetLocalCID), unix.SECCOMP_RET_ALLOW},
	}
	run := func(vm *bpf.VM, name string, in []byte, want int) {
		t.Helper()
		got, err := vm.Run(swap(in))
		if err != nil || got != want {
			t.Errorf("%s: %#x %v, want %#x", name, got, err, want)
		}
	}
	for _, c := range cases {
		run(vm, c.name, c.in, c.want)
	}
	// With vsock, socket(AF_VSOCK) and every address call stop in the
	// tracer; the rest is as without.
	vs := filterVM(t, true)
	trace := unix.SECCOMP_RET_TRACE
	for _, c := range []struct {
		name string
		in   []byte
		want int
	}{
		{"vsock socket", data(x86, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM), trace},
		{"vsock socket high bits", data(x86, unix.SYS_SOCKET, 0x100000000|unix.AF_VSOCK, unix.SOCK_DGRAM), trace},
		{"vsock socket unix", data(x86, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM), unix.SECCOMP_RET_ALLOW},
		{"vsock socketpair", data(x86, unix.SYS_SOCKETPAIR, unix.AF_VSOCK, unix.SOCK_STREAM), errno(unix.EAFNOSUPPORT)},
		{"vsock bind", data(x86, unix.SYS_BIND, 3), trace},
		{"vsock connect", data(x86, unix.SYS_CONNECT, 3), trace},
		{"vsock getsockname", data(x86, unix.SYS_GETSOCKNAME, 3), trace},
		{"vsock getpeername", data(x86, unix.SYS_GETPEERNAME, 3), trace},
		{"vsock SOL_VSOCK", data(x86, unix.SYS_GETSOCKOPT, 3, solVSock, 0), trace},
		{"vsock level AF_VSOCK", data(x86, unix.SYS_SETSOCKOPT, 3, unix.AF_VSOCK, 6), trace},
		{"vsock SO_DOMAIN", data(x86, unix.SYS_GETSOCKOPT, 3, unix.SOL_SOCKET, unix.SO_DOMAIN), trace},
		{"vsock SO_RCVBUF", data(x86, unix.SYS_SETSOCKOPT, 3, unix.SOL_SOCKET, unix.SO_RCVBUF), unix.SECCOMP_RET_ALLOW},
		{"vsock TCP option", data(x86, unix.SYS_SETSOCKOPT, 3, unix.IPPROTO_TCP, 1), unix.SECCOMP_RET_ALLOW},
		{"vsock GET_LOCAL_CID", data(x86, unix.SYS_IOCTL, 3, vmciGetLocalCID), trace},
		{"vsock GET_AF_VALUE", data(x86, unix.SYS_IOCTL, 3, vmciGetAFValue), trace},
		{"vsock fifreeze", data(x86, unix.SYS_IOCTL, 3, fifreeze), trace},
		{"vsock other ioctl", data(x86, unix.SYS_IOCTL, 3, unix.TCGETS), unix.SECCOMP_RET_ALLOW},
		{"vsock iopl", data(x86, unix.SYS_IOPL, 3), unix.SECCOMP_RET_ERRNO},
		{"vsock reboot", data(x86, unix.SYS_REBOOT), errno(unix.EPERM)},
		{"vsock io_uring_setup", data(x86, unix.SYS_IO_URING_SETUP, 8), errno(unix.ENOSYS)},
		{"vsock read", data(x86, unix.SYS_READ), unix.SECCOMP_RET_ALLOW},
		{"vsock i386", data(unix.AUDIT_ARCH_I386, 359), errno(unix.ENOSYS)},
	} {
		run(vs, c.name, c.in, c.want)
	}
	// The data path of a trapped socket (and of every other fd) never
	// stops: only the calls above hand a request to the tracer, so an
	// HGFS or RPCI round trip over vsock costs no ptrace stop.
	for name, nr := range map[string]int{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "readv": unix.SYS_READV, "writev": unix.SYS_WRITEV,
		"sendto": unix.SYS_SENDTO, "recvfrom": unix.SYS_RECVFROM, "sendmsg": unix.SYS_SENDMSG, "recvmsg": unix.SYS_RECVMSG,
		"sendmmsg": unix.SYS_SENDMMSG, "recvmmsg": unix.SYS_RECVMMSG, "epoll_pwait": unix.SYS_EPOLL_PWAIT,
		"epoll_wait": unix.SYS_EPOLL_WAIT, "ppoll": unix.SYS_PPOLL, "poll": unix.SYS_POLL, "fcntl": unix.SYS_FCNTL,
		"close": unix.SYS_CLOSE, "shutdown": unix.SYS_SHUTDOWN, "futex": unix.SYS_FUTEX,
	} {
		run(vs, "vsock data path "+name, data(x86, nr, 3, 0, 0), unix.SECCOMP_RET_ALLOW)
	}
}

// TestStatsSeccomp: the seccomp stops are counted by the name of the
// call, and a call the filter should never stop counts as "other".
func TestStatsSeccomp(t *testing.T) {
	var s Stats
	for _, nr := range []uint64{unix.SYS_SOCKET, unix.SYS_CONNECT, unix.SYS_CONNECT, unix.SYS_IOCTL, unix.SYS_WRITE} {
		s.seccomp[seccompIndex(nr)].Add(1)
	}
	s.Stops.Add(7)
	got := s.Snapshot()
	want := map[string]uint64{"socket": 1, "connect": 2, "ioctl": 1, "other": 1}
	if !maps.Equal(got.Seccomp, want) || got.Stops != 7 {
		t.Errorf("Snapshot() = %+v, want seccomp %v and 7 stops", got, want)
	}
	// Every call the vsock filter can stop has a name of its own.
	vm := filterVM(t, true)
	traced := map[string]bool{}
	for nr := range 512 {
		for _, args := range [][3]uint64{{unix.AF_VSOCK, 0, 0}, {3, fifreeze, 0}, {3, vmciGetLocalCID, 0}, {3, solVSock, 0}, {3, unix.SOL_SOCKET, unix.SO_DOMAIN}} {
			b := make([]byte, 64)
			binary.BigEndian.PutUint32(b[0:], uint32(nr)) // the interpreter's byte order
			binary.BigEndian.PutUint32(b[4:], unix.AUDIT_ARCH_X86_64)
			for i, a := range args {
				binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
			}
			if got, err := vm.Run(b); err != nil || got != unix.SECCOMP_RET_TRACE {
				continue
			}
			name := seccompCalls[seccompIndex(uint64(nr))]
			if name == "other" {
				t.Errorf("system call %d stops in the tracer but is counted as other", nr)
			}
			traced[name] = true
		}
	}
	if len(traced) != len(seccompCalls)-1 {
		t.Errorf("the filter stops %v, the counters name %v", traced, seccompCalls)
	}
}

func filterVM(t *testing.T, vsock bool) *bpf.VM {
	t.Helper()
	var prog []bpf.Instruction
	for _, f := range Filter(vsock) {
		prog = append(prog, bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}.Disassemble())
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}
