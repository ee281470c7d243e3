//go:build linux && amd64

package trap

import (
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// The FIFREEZE/FITHAW ioctls reach the tracer through the filter's
// SECCOMP_RET_TRACE (with no tracer attached they fail with ENOSYS, so
// nothing freezes by accident). On an fd whose path is one of
// Config.FreezeAllow (a loop file system the test mounted) the real ioctl
// runs; on anything else the call is skipped and returns 0, and recorded:
// a log line "trap: FIFREEZE recorded, not executed" (or FITHAW) with the
// pid and path, and the Stats.Freezes / Stats.Thaws counters. The real
// ones are logged as "trap: FIFREEZE executed".

// seccomp handles a PTRACE_EVENT_SECCOMP stop; the thread is resumed by
// the caller, with PTRACE_SYSCALL when it returns true.
func (t *tracer) seccomp(th *thread) bool {
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(th.tid, &regs); err != nil {
		t.failSafe(th, "a traced system call", err)
		return false
	}
	t.stats.seccomp[seccompIndex(regs.Orig_rax)].Add(1)
	if regs.Orig_rax == unix.SYS_IOCTL && (uint32(regs.Rsi) == fifreeze || uint32(regs.Rsi) == fithaw) {
		t.freezeIoctl(th, &regs)
		return false
	}
	return t.vsockCall(th, &regs)
}

// freezeIoctl handles FIFREEZE or FITHAW at its seccomp stop.
func (t *tracer) freezeIoctl(th *thread, regs *unix.PtraceRegs) {
	op := "FIFREEZE"
	switch uint32(regs.Rsi) {
	case fifreeze:
	case fithaw:
		op = "FITHAW"
	default:
		return
	}
	path, err := fdPath(th.tid, int(int32(regs.Rdi)))
	if err == nil && t.freezeAllowed(path) {
		t.lg.Info("trap: "+op+" executed", "pid", th.tid, "path", path)
		return
	}
	// Skip the call: syscall number -1, return value 0.
	regs.Orig_rax = ^uint64(0)
	regs.Rax = 0
	if err := unix.PtraceSetRegs(th.tid, regs); err != nil {
		t.failSafe(th, op, err)
		return
	}
	if op == "FIFREEZE" {
		t.stats.Freezes.Add(1)
	} else {
		t.stats.Thaws.Add(1)
	}
	t.lg.Info("trap: "+op+" recorded, not executed", "pid", th.tid, "path", path)
}

func fdPath(tid, fd int) (string, error) {
	if fd < 0 {
		return "", fmt.Errorf("fd %d", fd)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink(fmt.Sprintf("/proc/%d/fd/%d", tid, fd), buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (t *tracer) freezeAllowed(path string) bool {
	return slices.ContainsFunc(t.cfg.FreezeAllow, func(a string) bool { return filepath.Clean(a) == path })
}

// failSafe kills the process of a thread whose ioctl could not be
// inspected or skipped: resumed, it would run for real.
func (t *tracer) failSafe(th *thread, op string, err error) {
	t.lg.Error("trap: cannot skip "+op+"; killing the process", "pid", th.tid, "err", err)
	pid := th.tid
	if th.proc != nil {
		pid = th.proc.tgid
	}
	unix.Kill(pid, unix.SIGKILL)
}

// seccompIndex is the Stats.seccomp slot of system call nr.
func seccompIndex(nr uint64) int {
	calls := [...]uint64{unix.SYS_SOCKET, unix.SYS_BIND, unix.SYS_CONNECT, unix.SYS_GETSOCKNAME,
		unix.SYS_GETPEERNAME, unix.SYS_GETSOCKOPT, unix.SYS_SETSOCKOPT, unix.SYS_IOCTL}
	if i := slices.Index(calls[:], nr); i >= 0 {
		return i
	}
	return len(seccompCalls) - 1
}
