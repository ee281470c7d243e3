// Package trap is `vmxsim run`: a ptrace supervisor that runs an unchanged
// guest program (ours, or Debian's open-vm-tools) on a machine that is not
// a VMware VM and answers its backdoor instructions from a backdoor.Server,
// so the program's real backdoor code path meets the simulated VMX.
//
// How it works (linux/amd64; docs/architecture.md, "The backdoor trap",
// has the facts):
//   - The program is started through a helper (this binary re-executed with
//     HelperArg) that installs a seccomp filter and then execs it, so the
//     filter is inherited by everything the program starts: iopl and ioperm
//     succeed without effect (a root child cannot reach real ports);
//     without Config.VSock socket(AF_VSOCK, ...) fails with EAFNOSUPPORT
//     (tools fall back to the backdoor as on a kernel without vsock); with
//     it the program's vsock sockets become unix sockets connected to the
//     simulator (vsock_linux_amd64.go), and no AF_VSOCK socket is ever
//     made; socketpair(AF_VSOCK) fails with EAFNOSUPPORT, io_uring_setup
//     with ENOSYS; settimeofday, clock_settime, adjtimex, clock_adjtime
//     and reboot fail with EPERM; 32-bit system calls fail with ENOSYS.
//     GOVMTOOLS_SIMULATED=1 is set in its environment, and with
//     Config.VSock also GOVMTOOLS_VSOCK_TRAP=1 (EnvVSock).
//   - The FIFREEZE/FITHAW ioctls stop in the tracer (SECCOMP_RET_TRACE;
//     ENOSYS if no tracer is attached): on a mount point listed in
//     Config.FreezeAllow (vmxsim run --freeze-allow DIR, for loop file
//     systems a test made) the real ioctl runs; on anything else it is
//     skipped, returns 0, and is recorded in Stats.Freezes/Stats.Thaws and
//     a log line "trap: FIFREEZE recorded, not executed" with pid and path.
//   - One locked OS thread does every ptrace request and every wait, and
//     follows every thread, fork, vfork and exec (PTRACE_O_EXITKILL: if
//     vmxsim dies, so do they).
//   - A backdoor instruction outside VMware faults with SIGSEGV, si_code
//     SI_KERNEL. The trap decodes the instruction at RIP
//     (golang.org/x/arch/x86/x86asm); IN EAX,DX on port 0x5658 and REP
//     INSB/OUTSB on 0x5659 with the magic in EAX are served by the
//     Backdoor, RIP is advanced and the signal suppressed. Every other
//     signal, including other SIGSEGVs (Go's nil checks) and SIGILL
//     (open-vm-tools' Xen probe), is delivered unchanged.
//   - The CPU here says KVM, which open-vm-tools rejects, and CPUID
//     faulting is not available, so each cpuid instruction of the program
//     and of its libraries is replaced by a breakpoint when its file is
//     mapped (at exec, and at each return of the dynamic linker's
//     _dl_debug_state hook, which runs after every library load). The trap
//     answers leaf 0x40000000 with "VMwareVMware" and leaf 0x40000010
//     without the VMCALL/VMMCALL bits (in user mode here vmmcall is silently
//     swallowed), and every other leaf from the real CPUID. ScanELF finds
//     the cpuid instructions by decoding from known function starts, never
//     by patching bytes that merely look like one.
//
// Each trapped instruction costs two context switches and a handful of
// system calls; docs/benchmarks.md has the figures.
package trap

import (
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/govmtools/govmtools/vmxsim/backdoor"
	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// HelperArg is the first argument with which the trap re-executes
// Config.Helper; that binary's main must then call HelperMain.
const HelperArg = "__vmxsim-trap-exec"

// Config is one program to run under the trap.
type Config struct {
	// Backdoor serves the program's backdoor calls.
	Backdoor *backdoor.Server
	// Path is the program (an absolute path or one relative to Dir) and
	// Args its arguments after argv[0]; argv[0] is Path.
	Path string
	Args []string
	// Env is the program's environment; GOVMTOOLS_SIMULATED=1 is added.
	Env []string
	// Dir is its working directory; "" means vmxsim's.
	Dir string
	// Files are its stdin, stdout and stderr (and more); nil means
	// vmxsim's own.
	Files []*os.File
	// Helper is an executable whose main calls HelperMain when its first
	// argument is HelperArg: normally os.Executable() of vmxsim.
	Helper string
	// Logger receives the trap's diagnostics; nil discards them.
	Logger *slog.Logger
	// Stats, if set, counts what the trap did.
	Stats *Stats
	// FreezeAllow lists the mount points on which FIFREEZE and FITHAW
	// really run; everywhere else they are recorded no-ops.
	FreezeAllow []string
	// VSock, if set, turns the program's AF_VSOCK sockets into unix
	// sockets connected to the simulated VMX (vsock_linux_amd64.go); nil
	// keeps socket(AF_VSOCK) failing with EAFNOSUPPORT.
	VSock *VSockHost
}

// VSockHost is the simulated VMX's side of the vsock trap.
type VSockHost struct {
	// Endpoint returns the unix socket a guest's stream connect to
	// (cid, port) reaches, or the errno the connect fails with (as
	// ECONNRESET where the VMX has no listener or resets the port).
	Endpoint func(cid, port uint32) (path string, errno syscall.Errno)
	// GuestCID is the guest's own context id, the answer to
	// IOCTL_VM_SOCKETS_GET_LOCAL_CID; 0 means DefaultGuestCID.
	GuestCID uint32
}

// DefaultGuestCID is the guest CID the trap reports when VSockHost.GuestCID
// is 0.
const DefaultGuestCID = 3

// EnvVSock is set to 1 in the environment of a program the trap runs with
// Config.VSock: our tools then use vsock (their seccomp filter turns it
// into the simulator's sockets), which under GOVMTOOLS_SIMULATED=1 they
// otherwise never touch. The helper reads it to choose the filter.
const EnvVSock = "GOVMTOOLS_VSOCK_TRAP"

// Stats counts the trap's work.
type Stats struct {
	Backdoor atomic.Uint64 // backdoor instructions emulated
	CPUID    atomic.Uint64 // cpuid instructions answered
	Signals  atomic.Uint64 // signals passed to the program
	Execs    atomic.Uint64 // program images started
	Stops    atomic.Uint64 // ptrace stops handled, of every kind
	Threads  atomic.Uint64 // threads and processes followed
	Freezes  atomic.Uint64 // FIFREEZE calls recorded and not executed
	Thaws    atomic.Uint64 // FITHAW calls recorded and not executed

	VSockSockets  atomic.Uint64 // AF_VSOCK sockets made unix sockets
	VSockConnects atomic.Uint64 // vsock connects redirected to the simulator
	VSockRefused  atomic.Uint64 // vsock connects failed as the VMX answered

	// SyscallExits counts the exit stops of rewritten socket calls.
	SyscallExits atomic.Uint64
	// seccomp counts the seccomp stops (calls the filter hands to the
	// tracer) by seccompCalls index.
	seccomp [len(seccompCalls)]atomic.Uint64
}

// seccompCalls names the system calls the filter can hand to the tracer;
// "other" would be a filter bug (a call stopped that has no handler).
var seccompCalls = [...]string{"socket", "bind", "connect", "getsockname", "getpeername", "getsockopt", "setsockopt", "ioctl", "other"}

// Seccomp returns the seccomp stops so far, by system call name; calls
// that never stopped are left out.
func (s *Stats) Seccomp() map[string]uint64 {
	m := map[string]uint64{}
	for i, name := range seccompCalls {
		if n := s.seccomp[i].Load(); n > 0 {
			m[name] = n
		}
	}
	return m
}

// Snapshot returns the counters as `vmxsim ctl state` shows them.
func (s *Stats) Snapshot() vmx.TrapStats {
	return vmx.TrapStats{
		Stops:         s.Stops.Load(),
		Backdoor:      s.Backdoor.Load(),
		CPUID:         s.CPUID.Load(),
		Signals:       s.Signals.Load(),
		Execs:         s.Execs.Load(),
		Threads:       s.Threads.Load(),
		Seccomp:       s.Seccomp(),
		SyscallExits:  s.SyscallExits.Load(),
		VSockSockets:  s.VSockSockets.Load(),
		VSockConnects: s.VSockConnects.Load(),
		VSockRefused:  s.VSockRefused.Load(),
	}
}
