//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// vsockProbe exercises the vsock trap's emulation call by call and prints
// one "name=result" word each. Like seccompProbe it refuses to run unless
// a seccomp filter is in force, and also unless vmxsim's vsock trap says
// it is on (GOVMTOOLS_VSOCK_TRAP=1): only then is an AF_VSOCK socket a
// unix socket in disguise.
func vsockProbe() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(status), "\nSeccomp:\t2\n") || os.Getenv("GOVMTOOLS_VSOCK_TRAP") != "1" {
		fmt.Fprintln(os.Stderr, "bdprobe: not under the vsock trap; run me under vmxsim run")
		return 4
	}
	var out []string
	res := func(name string, v any) { out = append(out, fmt.Sprintf("%s=%v", name, v)) }
	errName := func(err error) string {
		if err == nil {
			return "ok"
		}
		return unix.ErrnoName(err.(syscall.Errno))
	}
	sock := func(typ int) int {
		fd, err := unix.Socket(unix.AF_VSOCK, typ, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bdprobe: socket:", err)
			os.Exit(1)
		}
		return fd
	}
	a := sock(unix.SOCK_STREAM)
	dom, err := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_DOMAIN)
	res("domain", fmt.Sprintf("%d/%s", dom, errName(err)))
	res("bind1023", errName(unix.Bind(a, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: 1023})))
	res("rebind", errName(unix.Bind(a, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: 1022})))
	if sa, err := unix.Getsockname(a); err == nil {
		vm := sa.(*unix.SockaddrVM)
		res("name", fmt.Sprintf("%#x:%d", vm.CID, vm.Port))
	} else {
		res("name", errName(err))
	}
	_, err = unix.Getpeername(a)
	res("peer", errName(err))
	b := sock(unix.SOCK_STREAM)
	res("inuse", errName(unix.Bind(b, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: 1023})))
	res("badcid", errName(unix.Bind(b, &unix.SockaddrVM{CID: 77, Port: 2000})))
	res("noport", errName(unix.Connect(b, &unix.SockaddrVM{CID: 0, Port: 999})))
	res("connect", errName(unix.Connect(a, &unix.SockaddrVM{CID: 0, Port: 976})))
	if sa, err := unix.Getpeername(a); err == nil {
		vm := sa.(*unix.SockaddrVM)
		res("peer", fmt.Sprintf("%d:%d", vm.CID, vm.Port))
	} else {
		res("peer", errName(err))
	}
	res("again", errName(unix.Connect(a, &unix.SockaddrVM{CID: 0, Port: 976})))
	bs, err := unix.GetsockoptUint64(a, unix.AF_VSOCK, unix.SO_VM_SOCKETS_BUFFER_SIZE)
	res("bufsize", fmt.Sprintf("%d/%s", bs, errName(err)))
	d := sock(unix.SOCK_DGRAM)
	res("dgrambind", errName(unix.Bind(d, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: 766})))
	_, err = unix.Socketpair(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	res("socketpair", errName(err))
	for _, fd := range []int{a, b, d} {
		unix.Close(fd)
	}
	// A closed socket's port is free again.
	c := sock(unix.SOCK_STREAM)
	res("reuse", errName(unix.Bind(c, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: 1023})))
	unix.Close(c)
	if f, err := os.Open("/dev/vsock"); err == nil {
		cid, err := unix.IoctlGetUint32(int(f.Fd()), 0x7b9)
		res("localcid", fmt.Sprintf("%d/%s", cid, errName(err)))
		f.Close()
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}
