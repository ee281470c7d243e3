//go:build linux && amd64

package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/govmtools/govmtools/rpc/backdoor"
)

func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

func cpuidReport() string {
	_, _, c, _ := cpuid(0x40000010, 0)
	return fmt.Sprintf("signature=%q leaf40000010.ecx=%#x", backdoor.HypervisorSignature(), c)
}

// holdHalfSent sends SENDSIZE 100 and one SENDPAYLOAD word by hand.
func holdHalfSent(ch *backdoor.Channel) {
	id := uint64(ch.ID()) << 16
	hi, lo := ch.Cookie()
	r := backdoor.Regs{BX: 100, CX: 1<<16 | backdoor.CmdMessage, DX: id, SI: uint64(hi), DI: uint64(lo)}
	backdoor.Native{}.LB(&r)
	r = backdoor.Regs{BX: 0x676f6c00, CX: 2<<16 | backdoor.CmdMessage, DX: id, SI: uint64(hi), DI: uint64(lo)}
	backdoor.Native{}.LB(&r)
}

// seccompProbe tries each operation the trap forbids, with arguments
// that are harmless even without the filter (an invalid reboot magic, an
// invalid clock, a read-only adjtimex, FIFREEZE on /dev/null), and prints
// one "name=errno" line each.
//
// It refuses to run unless a seccomp filter is in force (Seccomp: 2 in
// /proc/self/status): an AF_VSOCK socket must never be opened on a
// development machine.
func seccompProbe() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !strings.Contains(string(status), "\nSeccomp:\t2\n") {
		fmt.Fprintln(os.Stderr, "bdprobe: no seccomp filter in force; run me under vmxsim run")
		return 4
	}
	var out []string
	res := func(name string, err error) {
		if err == nil {
			out = append(out, name+"=ok")
		} else {
			out = append(out, name+"="+unix.ErrnoName(err.(syscall.Errno)))
		}
	}
	_, _, e := unix.Syscall(unix.SYS_IOPL, 3, 0, 0)
	res("iopl", errOrNil(e))
	_, _, e = unix.Syscall(unix.SYS_IOPERM, 0x5658, 2, 1)
	res("ioperm", errOrNil(e))
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.Close(fd)
	}
	res("socket_vsock", err)
	fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.Close(fd)
	}
	res("socket_unix", err)
	_, _, e = unix.Syscall(unix.SYS_SETTIMEOFDAY, 0, 0, 0)
	res("settimeofday", errOrNil(e))
	_, _, e = unix.Syscall(unix.SYS_CLOCK_SETTIME, ^uintptr(0), 0, 0)
	res("clock_settime", errOrNil(e))
	var tx unix.Timex
	_, err = unix.Adjtimex(&tx)
	res("adjtimex", err)
	_, _, e = unix.Syscall(unix.SYS_CLOCK_ADJTIME, 0, 0, 0)
	res("clock_adjtime", errOrNil(e))
	_, _, e = unix.Syscall6(unix.SYS_REBOOT, 0, 0, 0, 0, 0, 0)
	res("reboot", errOrNil(e))
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0); err == nil {
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xC0045877, 0)
		res("fifreeze", errOrNil(e))
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xC0045878, 0)
		res("fithaw", errOrNil(e))
		unix.Close(fd)
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}

func errOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
