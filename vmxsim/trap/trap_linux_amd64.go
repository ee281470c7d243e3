//go:build linux && amd64

package trap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/govmtools/govmtools/vmxsim/backdoor"
)

// Supported reports whether this build can run the trap.
const Supported = true

const (
	siKernel = 0x80 // SI_KERNEL: the fault of an I/O instruction or int3
	kcmpVM   = 1    // KCMP_VM
	int3     = 0xCC
)

// Run starts cfg.Path under the trap and serves its backdoor calls until
// every traced process has exited. It returns the exit code of the first
// process: its exit status, or 128+n when signal n killed it. When ctx ends
// the program gets SIGTERM, and SIGKILL 5 s later if anything remains.
func Run(ctx context.Context, cfg Config) (int, error) {
	if cfg.Backdoor == nil || cfg.Path == "" || cfg.Helper == "" {
		return 0, errors.New("trap: Config needs Backdoor, Path and Helper")
	}
	t := &tracer{
		cfg:     cfg,
		lg:      cfg.Logger,
		threads: map[int]*thread{},
		procs:   map[int]*proc{},
		elf:     map[string]*ELFInfo{},
		stats:   cfg.Stats,
		vs:      newVSockState(cfg.VSock),
	}
	if t.lg == nil {
		t.lg = slog.New(slog.DiscardHandler)
	}
	if t.stats == nil {
		t.stats = &Stats{}
	}
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	started := make(chan int, 1)
	go func() {
		// Every ptrace request must come from the thread that started
		// the child, and this thread alone waits. It is never unlocked:
		// when this goroutine ends the thread ends with it.
		runtime.LockOSThread()
		code, err := t.run(started)
		res <- result{code, err}
	}()
	pid := <-started
	if pid < 0 {
		r := <-res
		return r.code, r.err
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		select {
		case <-stop:
			return
		case <-ctx.Done():
		}
		unix.Kill(pid, unix.SIGTERM)
		select {
		case <-stop:
		case <-time.After(5 * time.Second):
			t.killAll()
		}
	})
	r := <-res
	close(stop)
	wg.Wait()
	return r.code, r.err
}

// tracer owns every traced thread. Apart from killAll (guarded by mu), it
// runs on the locked thread.
type tracer struct {
	cfg   Config
	lg    *slog.Logger
	stats *Stats

	mainPid  int
	mainCode int

	threads map[int]*thread // by tid
	procs   map[int]*proc   // by tgid
	elf     map[string]*ELFInfo
	vs      *vsockState // nil without Config.VSock

	mu    sync.Mutex
	tgids map[int]bool // live processes, for killAll
}

type thread struct {
	tid   int
	proc  *proc
	fresh bool // has not reported its initial SIGSTOP yet
	// socketExit is set while a rewritten socket(AF_VSOCK) runs: its
	// syscall-exit-stop records the new socket.
	socketExit *vsockSock
}

type proc struct {
	tgid    int
	mem     *os.File // /proc/tgid/mem
	space   *space
	threads int
}

// space is one address space: the breakpoints the trap planted in it and
// the mappings already scanned. Threads and vfork children share it; a
// fork child gets a copy, as its memory is a copy.
type space struct {
	bps     map[uint64]bpKind
	scanned map[string]bool
}

type bpKind struct {
	cpuid      bool
	debugState bool
}

func newSpace() *space { return &space{bps: map[uint64]bpKind{}, scanned: map[string]bool{}} }

func (s *space) clone() *space {
	c := newSpace()
	for k, v := range s.bps {
		c.bps[k] = v
	}
	for k, v := range s.scanned {
		c.scanned[k] = v
	}
	return c
}

func (t *tracer) run(started chan<- int) (int, error) {
	argv := append([]string{t.cfg.Helper, HelperArg, t.cfg.Path}, t.cfg.Args...)
	var env []string
	for _, kv := range t.cfg.Env {
		if !strings.HasPrefix(kv, EnvVSock+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GOVMTOOLS_SIMULATED=1")
	if t.vs != nil {
		env = append(env, EnvVSock+"=1")
	}
	files := t.cfg.Files
	if files == nil {
		files = []*os.File{os.Stdin, os.Stdout, os.Stderr}
	}
	p, err := os.StartProcess(t.cfg.Helper, argv, &os.ProcAttr{
		Dir:   t.cfg.Dir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	})
	if err != nil {
		started <- -1
		return 0, fmt.Errorf("trap: start %s: %w", t.cfg.Path, err)
	}
	t.mainPid = p.Pid
	t.tgids = map[int]bool{p.Pid: true}
	// This tracer waits for it, not os.Process; Release makes p.Pid -1.
	p.Release()
	started <- t.mainPid
	first := true

	for {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			break
		}
		if err != nil {
			t.killAll()
			return 0, fmt.Errorf("trap: wait: %w", err)
		}
		if first && tid == t.mainPid && ws.Stopped() && ws.StopSignal() == unix.SIGTRAP {
			// The helper stopped after its own exec (PTRACE_TRACEME).
			first = false
			opts := unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
				unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESECCOMP |
				unix.PTRACE_O_TRACESYSGOOD
			if err := unix.PtraceSetOptions(tid, opts); err != nil {
				unix.Kill(tid, unix.SIGKILL)
				return 0, fmt.Errorf("trap: set ptrace options: %w", err)
			}
			t.adopt(tid, false)
			t.cont(tid, 0)
			continue
		}
		t.stats.Stops.Add(1)
		t.handle(tid, ws)
	}
	for _, p := range t.procs {
		p.close()
	}
	s := t.stats
	t.lg.Debug("trap finished", "stops", s.Stops.Load(), "backdoor", s.Backdoor.Load(), "cpuid", s.CPUID.Load(),
		"signals", s.Signals.Load(), "execs", s.Execs.Load(), "threads", s.Threads.Load())
	return t.mainCode, nil
}

func (t *tracer) handle(tid int, ws unix.WaitStatus) {
	th := t.threads[tid]
	if ws.Exited() || ws.Signaled() {
		if tid == t.mainPid {
			if ws.Exited() {
				t.mainCode = ws.ExitStatus()
			} else {
				t.mainCode = 128 + int(ws.Signal())
			}
		}
		if th != nil {
			t.drop(th)
		}
		return
	}
	if !ws.Stopped() {
		return
	}
	if th == nil {
		th = t.adopt(tid, true)
		if th == nil {
			t.cont(tid, 0)
			return
		}
	}
	sig := ws.StopSignal()
	if sig == unix.SIGTRAP|0x80 {
		// A syscall-exit-stop (PTRACE_O_TRACESYSGOOD), asked for by a
		// seccomp stop that resumed with PTRACE_SYSCALL.
		t.stats.SyscallExits.Add(1)
		t.syscallExit(th)
		t.cont(tid, 0)
		return
	}
	if sig == unix.SIGTRAP && ws.TrapCause() > 0 {
		t.event(th, ws.TrapCause())
		return
	}
	if th.fresh && sig == unix.SIGSTOP {
		th.fresh = false
		t.cont(tid, 0)
		return
	}
	switch sig {
	case unix.SIGSEGV:
		if si, ok := t.siginfo(tid); ok && si.Code == siKernel && t.backdoor(th) {
			t.cont(tid, 0)
			return
		}
	case unix.SIGTRAP:
		if si, ok := t.siginfo(tid); ok && si.Code == siKernel && t.breakpoint(th) {
			t.cont(tid, 0)
			return
		}
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		if _, ok := t.siginfo(tid); !ok {
			// A group-stop (GETSIGINFO fails for those): resume.
			t.cont(tid, 0)
			return
		}
	}
	t.stats.Signals.Add(1)
	t.cont(tid, int(sig))
}

// event handles a ptrace event stop.
func (t *tracer) event(th *thread, cause int) {
	switch cause {
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		if msg, err := unix.PtraceGetEventMsg(th.tid); err == nil {
			if _, known := t.threads[int(msg)]; !known {
				t.adopt(int(msg), true)
			}
		}
	case unix.PTRACE_EVENT_EXEC:
		t.exec(th)
	case unix.PTRACE_EVENT_SECCOMP:
		if t.seccomp(th) {
			// See the syscall's result at its exit stop.
			if err := unix.PtraceSyscall(th.tid, 0); err != nil && err != unix.ESRCH {
				t.lg.Debug("trap: ptrace syscall", "tid", th.tid, "err", err)
			}
			return
		}
	}
	t.cont(th.tid, 0)
}

// adopt records a thread first seen now, from /proc: its process, and for
// a new process the address space it starts with.
func (t *tracer) adopt(tid int, fresh bool) *thread {
	tgid, ppid, err := procStatus(tid)
	if err != nil {
		return nil // gone already
	}
	th := &thread{tid: tid, fresh: fresh}
	p := t.procs[tgid]
	if p == nil {
		p = &proc{tgid: tgid}
		parent := t.procs[ppid]
		switch {
		case parent == nil:
			p.space = newSpace()
		case sameVM(ppid, tgid):
			p.space = parent.space // vfork, CLONE_VM
		default:
			p.space = parent.space.clone()
		}
		if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", tgid), os.O_RDWR, 0); err == nil {
			p.mem = f
		}
		t.procs[tgid] = p
		t.mu.Lock()
		t.tgids[tgid] = true
		t.mu.Unlock()
	}
	p.threads++
	t.stats.Threads.Add(1)
	th.proc = p
	t.threads[tid] = th
	return th
}

// drop forgets a thread that has exited, and its process with its last
// thread: the process's backdoor channels are closed.
func (t *tracer) drop(th *thread) {
	delete(t.threads, th.tid)
	p := th.proc
	p.threads--
	if th.tid != p.tgid {
		return // the leader's exit is reported after every other thread's
	}
	delete(t.procs, p.tgid)
	p.close()
	t.cfg.Backdoor.CloseOwner(p.tgid)
	t.mu.Lock()
	delete(t.tgids, p.tgid)
	t.mu.Unlock()
}

func (p *proc) close() {
	if p.mem != nil {
		p.mem.Close()
		p.mem = nil
	}
}

// exec handles a new program image in th's process: threads other than
// the one that exec'd are gone, the old image's channels are closed, and
// the new image's cpuid instructions are patched.
func (t *tracer) exec(th *thread) {
	if former, err := unix.PtraceGetEventMsg(th.tid); err == nil && int(former) != th.tid {
		delete(t.threads, int(former))
	}
	p := th.proc
	for tid, o := range t.threads {
		if o.proc == p && tid != th.tid {
			delete(t.threads, tid)
		}
	}
	p.threads = 1
	t.cfg.Backdoor.CloseOwner(p.tgid)
	p.close()
	if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", p.tgid), os.O_RDWR, 0); err == nil {
		p.mem = f
	}
	p.space = newSpace()
	t.stats.Execs.Add(1)
	t.patch(p)
}

// patch plants a breakpoint on every cpuid instruction of every executable
// file mapping not yet scanned in p's address space, and on the dynamic
// linker's _dl_debug_state, which it calls after loading libraries.
func (t *tracer) patch(p *proc) {
	if p.mem == nil {
		return
	}
	maps, err := readMaps(p.tgid)
	if err != nil {
		t.lg.Debug("trap: read maps", "pid", p.tgid, "err", err)
		return
	}
	for _, m := range maps {
		if !m.exec || !strings.HasPrefix(m.path, "/") {
			continue
		}
		key := fmt.Sprintf("%x-%x %s %d", m.start, m.end, m.dev, m.inode)
		if p.space.scanned[key] {
			continue
		}
		p.space.scanned[key] = true
		info := t.elfInfo(p.tgid, m)
		if info == nil {
			continue
		}
		plant := func(off uint64, kind bpKind) {
			if off < m.offset || off >= m.offset+(m.end-m.start) {
				return
			}
			addr := m.start + off - m.offset
			if _, err := p.mem.WriteAt([]byte{int3}, int64(addr)); err != nil {
				t.lg.Warn("trap: cannot plant breakpoint", "pid", p.tgid, "file", m.path, "err", err)
				return
			}
			p.space.bps[addr] = kind
		}
		for _, off := range info.CPUID {
			plant(off, bpKind{cpuid: true})
		}
		if info.DebugState != 0 && info.DebugStateRet {
			plant(info.DebugState, bpKind{debugState: true})
		}
	}
}

func (t *tracer) elfInfo(pid int, m mapping) *ELFInfo {
	key := fmt.Sprintf("%s %d", m.dev, m.inode)
	if info, ok := t.elf[key]; ok {
		return info
	}
	// map_files names the very file mapped, even if the path has since
	// been replaced.
	f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.start, m.end))
	if err != nil {
		f, err = os.Open(m.path)
	}
	var info *ELFInfo
	if err == nil {
		info, err = ScanELF(f)
		f.Close()
	}
	if err != nil {
		t.lg.Debug("trap: not scanning mapping", "file", m.path, "err", err)
	}
	t.elf[key] = info
	return info
}

// breakpoint handles an int3 the trap planted: a cpuid to answer, or the
// dynamic linker's hook after loading libraries.
func (t *tracer) breakpoint(th *thread) bool {
	var regs unix.PtraceRegs
	if unix.PtraceGetRegs(th.tid, &regs) != nil {
		return false
	}
	addr := regs.Rip - 1
	kind, ok := th.proc.space.bps[addr]
	if !ok {
		return false
	}
	switch {
	case kind.cpuid:
		a, b, c, d := answerCPUID(uint32(regs.Rax), uint32(regs.Rcx))
		regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx = uint64(a), uint64(b), uint64(c), uint64(d)
		regs.Rip = addr + 2
		t.stats.CPUID.Add(1)
	case kind.debugState:
		// _dl_debug_state is a bare return: emulate it, then patch what
		// was loaded.
		var ret [8]byte
		if _, err := th.proc.mem.ReadAt(ret[:], int64(regs.Rsp)); err != nil {
			return false
		}
		regs.Rip = leUint64(ret[:])
		regs.Rsp += 8
		t.patch(th.proc)
	}
	return unix.PtraceSetRegs(th.tid, &regs) == nil
}

// backdoor emulates a faulting IN or REP INSB/OUTSB on the backdoor ports
// with the magic in EAX. It returns false for any other fault, which is
// then delivered to the program.
func (t *tracer) backdoor(th *thread) bool {
	var regs unix.PtraceRegs
	if unix.PtraceGetRegs(th.tid, &regs) != nil || th.proc.mem == nil {
		return false
	}
	var code [16]byte
	n, _ := th.proc.mem.ReadAt(code[:], int64(regs.Rip))
	inst, err := x86asm.Decode(code[:n], 64)
	if err != nil || uint32(regs.Rax) != backdoor.Magic {
		return false
	}
	port := uint16(regs.Rdx)
	r := backdoor.Regs{AX: regs.Rax, BX: regs.Rbx, CX: regs.Rcx, DX: regs.Rdx, SI: regs.Rsi, DI: regs.Rdi, BP: regs.Rbp}
	mem := procMem{th.proc.mem}
	switch {
	case inst.Op == x86asm.IN && inst.Args[0] == x86asm.EAX && inst.Args[1] == x86asm.DX && port == backdoor.LBPort:
		t.cfg.Backdoor.LB(&r, th.proc.tgid)
	case inst.Op == x86asm.INSB && hasREP(inst) && port == backdoor.HBPort:
		t.cfg.Backdoor.HBIn(&r, th.proc.tgid, mem)
	case inst.Op == x86asm.OUTSB && hasREP(inst) && port == backdoor.HBPort:
		t.cfg.Backdoor.HBOut(&r, th.proc.tgid, mem)
	default:
		return false
	}
	regs.Rax, regs.Rbx, regs.Rcx, regs.Rdx, regs.Rsi, regs.Rdi, regs.Rbp = r.AX, r.BX, r.CX, r.DX, r.SI, r.DI, r.BP
	regs.Rip += uint64(inst.Len)
	t.stats.Backdoor.Add(1)
	return unix.PtraceSetRegs(th.tid, &regs) == nil
}

func hasREP(inst x86asm.Inst) bool {
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if p&0xFF == x86asm.PrefixREP {
			return true
		}
	}
	return false
}

type procMem struct{ f *os.File }

func (m procMem) ReadAt(p []byte, addr uint64) error {
	if addr > 1<<62 {
		return errors.New("address out of range")
	}
	_, err := m.f.ReadAt(p, int64(addr))
	return err
}

func (m procMem) WriteAt(p []byte, addr uint64) error {
	if addr > 1<<62 {
		return errors.New("address out of range")
	}
	_, err := m.f.WriteAt(p, int64(addr))
	return err
}

func (t *tracer) siginfo(tid int) (unix.Siginfo, bool) {
	var si unix.Siginfo
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&si)), 0, 0)
	return si, e == 0
}

// cont resumes a thread; one that has vanished (killed meanwhile) is
// ignored: its exit is reported by wait.
func (t *tracer) cont(tid, sig int) {
	if err := unix.PtraceCont(tid, sig); err != nil && err != unix.ESRCH {
		t.lg.Debug("trap: ptrace cont", "tid", tid, "err", err)
	}
}

func (t *tracer) killAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tgid := range t.tgids {
		unix.Kill(tgid, unix.SIGKILL)
	}
}

// procStatus returns the thread group and parent of tid.
func procStatus(tid int) (tgid, ppid int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Tgid":
			tgid, _ = strconv.Atoi(v)
		case "PPid":
			ppid, _ = strconv.Atoi(v)
		}
	}
	if tgid == 0 {
		return 0, 0, fmt.Errorf("no Tgid in /proc/%d/status", tid)
	}
	return tgid, ppid, nil
}

// sameVM reports whether two processes share one address space.
func sameVM(a, b int) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
	return e == 0 && r == 0
}

type mapping struct {
	start, end, offset uint64
	exec               bool
	dev                string
	inode              uint64
	path               string
}

func readMaps(pid int) ([]mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	var out []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		var m mapping
		m.start, _ = strconv.ParseUint(lo, 16, 64)
		m.end, _ = strconv.ParseUint(hi, 16, 64)
		m.offset, _ = strconv.ParseUint(f[2], 16, 64)
		m.exec = len(f[1]) > 2 && f[1][2] == 'x'
		m.dev = f[3]
		m.inode, _ = strconv.ParseUint(f[4], 10, 64)
		if len(f) >= 6 {
			m.path = strings.Join(f[5:], " ")
		}
		out = append(out, m)
	}
	return out, nil
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// cpuid executes CPUID in the tracer (cpuid_amd64.s).
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

// answerCPUID is the CPU as the trap presents it: the real CPUID, except
// that the hypervisor leaves say VMware (leaf 0x40000000 "VMwareVMware";
// leaf 0x40000010 with no VMCALL/VMMCALL bits, so guests use the I/O
// port; everything else in the range zero) and the hypervisor-present bit
// is set.
func answerCPUID(leaf, sub uint32) (a, b, c, d uint32) {
	switch {
	case leaf == 0x40000000:
		return 0x40000010, 0x61774d56, 0x4d566572, 0x65726177 // "VMwa" "reVM" "ware"
	case leaf >= 0x40000001 && leaf <= 0x400000FF:
		return 0, 0, 0, 0
	}
	a, b, c, d = cpuid(leaf, sub)
	if leaf == 1 {
		c |= 1 << 31
	}
	return a, b, c, d
}
