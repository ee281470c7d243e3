//go:build linux && amd64

package trap

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const envNoTracer = "GOVMTOOLS_TRAP_TEST_NO_TRACER"

// TestFilterFailsClosed installs the vsock filter in a child that no
// tracer follows: every call the filter hands to the tracer must then fail
// with ENOSYS without running, socket(AF_VSOCK) above all, while other
// calls work.
func TestFilterFailsClosed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envNoTracer+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "socket(AF_VSOCK)=ENOSYS socket(AF_VSOCK,DGRAM)=ENOSYS connect=ENOSYS bind=ENOSYS getsockname=ENOSYS GET_LOCAL_CID=ENOSYS socket(AF_UNIX)=ok"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("without a tracer:\n got %s\nwant %s", got, want)
	}
}

// noTracerChild is the child: it prints what each call returned.
func noTracerChild() int {
	if err := InstallFilter(true); err != nil {
		fmt.Println("install:", err)
		return 1
	}
	status, _ := os.ReadFile("/proc/self/status")
	if !strings.Contains(string(status), "Seccomp:\t2") {
		// Without the filter in force nothing below may run.
		fmt.Println("no seccomp filter in force")
		return 1
	}
	name := func(e unix.Errno) string {
		if e == unix.ENOSYS {
			return "ENOSYS"
		}
		return e.Error()
	}
	var res []string
	call := func(label string, nr uintptr, a ...uintptr) {
		a = append(a, 0, 0, 0)
		r, _, e := unix.RawSyscall(nr, a[0], a[1], a[2])
		if e == 0 {
			res = append(res, label+"=ok")
			unix.Close(int(r))
			return
		}
		res = append(res, label+"="+name(e))
	}
	var sa [16]byte
	sa[0] = unix.AF_VSOCK
	var n uint32 = 16
	call("socket(AF_VSOCK)", unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	call("socket(AF_VSOCK,DGRAM)", unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_DGRAM, 0)
	call("connect", unix.SYS_CONNECT, 0, uintptr(unsafe.Pointer(&sa)), 16)
	call("bind", unix.SYS_BIND, 0, uintptr(unsafe.Pointer(&sa)), 16)
	call("getsockname", unix.SYS_GETSOCKNAME, 0, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)))
	call("GET_LOCAL_CID", unix.SYS_IOCTL, 0, vmciGetLocalCID, uintptr(unsafe.Pointer(&n)))
	call("socket(AF_UNIX)", unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0)
	fmt.Println(strings.Join(res, " "))
	return 0
}
