//go:build linux && amd64

package trap

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl requests the filter hands to the tracer.
const (
	fifreeze = 0xC0045877 // _IOWR('X', 119, int)
	fithaw   = 0xC0045878 // _IOWR('X', 120, int)

	vmciGetAFValue  = 0x7b8 // VMCI_SOCKETS_GET_AF_VALUE (1976)
	vmciGetLocalCID = 0x7b9 // IOCTL_VM_SOCKETS_GET_LOCAL_CID (1977)
	solVSock        = 287   // SOL_VSOCK
)

// HelperMain is the helper the trap starts: args are HelperArg, the
// program and its arguments. It installs the seccomp filter (inherited
// across exec and fork) and execs the program, which the tracer then
// follows. It returns only on failure, with the exit code to use.
func HelperMain(args []string) int {
	if len(args) < 2 || args[0] != HelperArg {
		fmt.Fprintln(os.Stderr, "vmxsim: internal helper: bad arguments")
		return 127
	}
	runtime.LockOSThread()
	if err := InstallFilter(os.Getenv(EnvVSock) == "1"); err != nil {
		fmt.Fprintf(os.Stderr, "vmxsim run: %v\n", err)
		return 127
	}
	path := args[1]
	err := syscall.Exec(path, append([]string{path}, args[2:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "vmxsim run: exec %s: %v\n", path, err)
	return 127
}

// Filter returns the seccomp program of the trap (see the package doc).
// With vsock, socket(AF_VSOCK) and the calls that take a vsock address or
// option stop in the tracer, which rewrites them (vsock_linux_amd64.go);
// without it socket(AF_VSOCK) fails with EAFNOSUPPORT. Either way
// socketpair(AF_VSOCK) fails with EAFNOSUPPORT and io_uring_setup with
// ENOSYS (an io_uring could create sockets the filter never sees).
func Filter(vsock bool) []unix.SockFilter {
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgt = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K

		offNr   = 0
		offArch = 4
		offArg0 = 16
		offArg1 = 24
		offArg2 = 32

		allow = unix.SECCOMP_RET_ALLOW
		errno = unix.SECCOMP_RET_ERRNO
	)
	// Each entry is an instruction, or a conditional jump to a label.
	type ins struct {
		code  uint16
		k     uint32
		label string // jump target when the comparison is true
		def   string // a label defined here
	}
	vsockSocket := "eafnosupport"
	if vsock {
		vsockSocket = "trace"
	}
	prog := []ins{
		{code: ld, k: offArch},
		{code: jeq, k: unix.AUDIT_ARCH_X86_64, label: "x86_64"},
		{code: ret, k: errno | uint32(unix.ENOSYS)}, // i386 (int 0x80) calls
		{def: "x86_64", code: ld, k: offNr},
		{code: jgt, k: 0x3FFFFFFF, label: "enosys"}, // x32 calls
		{code: jeq, k: unix.SYS_IOPL, label: "noop"},
		{code: jeq, k: unix.SYS_IOPERM, label: "noop"},
		{code: jeq, k: unix.SYS_SETTIMEOFDAY, label: "eperm"},
		{code: jeq, k: unix.SYS_CLOCK_SETTIME, label: "eperm"},
		{code: jeq, k: unix.SYS_ADJTIMEX, label: "eperm"},
		{code: jeq, k: unix.SYS_CLOCK_ADJTIME, label: "eperm"},
		{code: jeq, k: unix.SYS_REBOOT, label: "eperm"},
		{code: jeq, k: unix.SYS_IO_URING_SETUP, label: "enosys"},
		{code: jeq, k: unix.SYS_SOCKET, label: "socket"},
		{code: jeq, k: unix.SYS_SOCKETPAIR, label: "socketpair"},
		{code: jeq, k: unix.SYS_IOCTL, label: "ioctl"},
	}
	if vsock {
		// A filter cannot read the sockaddr behind a pointer: every
		// bind, connect, getsockname and getpeername stops, and the
		// tracer lets those of other families run unchanged.
		prog = append(prog,
			ins{code: jeq, k: unix.SYS_BIND, label: "trace"},
			ins{code: jeq, k: unix.SYS_CONNECT, label: "trace"},
			ins{code: jeq, k: unix.SYS_GETSOCKNAME, label: "trace"},
			ins{code: jeq, k: unix.SYS_GETPEERNAME, label: "trace"},
			ins{code: jeq, k: unix.SYS_GETSOCKOPT, label: "sockopt"},
			ins{code: jeq, k: unix.SYS_SETSOCKOPT, label: "sockopt"},
		)
	}
	prog = append(prog,
		ins{code: ret, k: allow},
		ins{def: "socket", code: ld, k: offArg0},
		ins{code: jeq, k: unix.AF_VSOCK, label: vsockSocket},
		ins{code: ret, k: allow},
		ins{def: "socketpair", code: ld, k: offArg0},
		ins{code: jeq, k: unix.AF_VSOCK, label: "eafnosupport"},
		ins{code: ret, k: allow},
		ins{def: "ioctl", code: ld, k: offArg1},
		ins{code: jeq, k: fifreeze, label: "trace"},
		ins{code: jeq, k: fithaw, label: "trace"},
	)
	if vsock {
		prog = append(prog,
			ins{code: jeq, k: vmciGetAFValue, label: "trace"},
			ins{code: jeq, k: vmciGetLocalCID, label: "trace"},
			ins{code: ret, k: allow},
			// Socket options: the vsock levels, and SO_DOMAIN, which
			// would say AF_UNIX.
			ins{def: "sockopt", code: ld, k: offArg1},
			ins{code: jeq, k: unix.AF_VSOCK, label: "trace"},
			ins{code: jeq, k: solVSock, label: "trace"},
			ins{code: jeq, k: unix.SOL_SOCKET, label: "solsocket"},
			ins{code: ret, k: allow},
			ins{def: "solsocket", code: ld, k: offArg2},
			ins{code: jeq, k: unix.SO_DOMAIN, label: "trace"},
		)
	}
	prog = append(prog,
		ins{code: ret, k: allow},
		ins{def: "noop", code: ret, k: errno | 0},               // returns 0: success, no effect
		ins{def: "trace", code: ret, k: unix.SECCOMP_RET_TRACE}, // the tracer decides (freeze_linux_amd64.go, vsock_linux_amd64.go)
		ins{def: "eperm", code: ret, k: errno | uint32(unix.EPERM)},
		ins{def: "eafnosupport", code: ret, k: errno | uint32(unix.EAFNOSUPPORT)},
		ins{def: "enosys", code: ret, k: errno | uint32(unix.ENOSYS)},
	)
	at := map[string]int{}
	for i, in := range prog {
		if in.def != "" {
			at[in.def] = i
		}
	}
	out := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		f := unix.SockFilter{Code: in.code, K: in.k}
		if in.label != "" {
			f.Jt = uint8(at[in.label] - i - 1)
		}
		out[i] = f
	}
	return out
}

// InstallFilter installs Filter(vsock) on every thread of the calling
// process.
func InstallFilter(vsock bool) error {
	f := Filter(vsock)
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	install := func() error {
		_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
		if e != 0 {
			return e
		}
		return nil
	}
	err := install()
	if err == unix.EACCES {
		// Without CAP_SYS_ADMIN a filter needs no_new_privs.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("trap: no_new_privs: %w", err)
		}
		err = install()
	}
	runtime.KeepAlive(f)
	if err != nil {
		return fmt.Errorf("trap: install seccomp filter: %w", err)
	}
	return nil
}
