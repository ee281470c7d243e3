package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireTrap requires what `vmxsim run` needs: linux/amd64 and ptrace.
// On arm64 it is a documented skip (NotOnArm64, Arm64Trap), not a
// missing capability.
func RequireTrap(t testing.TB) {
	t.Helper()
	NotOnArm64(t, Arm64Trap)
	Require(t, runtime.GOOS == "linux" && runtime.GOARCH == "amd64", "linux/amd64 for the ptrace trap (vmxsim run)", "run the trap tier on an x86-64 Linux machine")
	scope, _ := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	Require(t, strings.TrimSpace(string(scope)) != "3", "ptrace (kernel.yama.ptrace_scope is 3)", "sysctl kernel.yama.ptrace_scope=1")
}

// TrapShell is a shell running under `vmxsim run`: every program it
// starts runs under the ptrace trap against one simulated VMX, whose
// sockets and vmware.log are in Dir. Trap wraps it for tests; the
// benchmark, which has no testing.TB, uses it directly. Its methods are
// safe for concurrent use; after one fails the shell is unusable.
type TrapShell struct {
	Dir string // the simulator directory: ctl.sock, vmware.log, ...

	proc    *SimProcess
	in      io.WriteCloser
	out     *bufio.Reader // the shell's stdout: the marker lines
	scratch string        // the programs' output files
	mu      sync.Mutex
	seq     int
	broken  error
}

// TrapShellConfig configures StartTrapShell.
type TrapShellConfig struct {
	// VMXSim is the path of the vmxsim binary.
	VMXSim string
	// Dir is the simulator directory.
	Dir string
	// Args are vmxsim run's flags, for example "--lb" or
	// "--ping-interval", "100ms".
	Args []string
	// Wrap is a command prefix vmxsim is started through, for example
	// {"ip", "netns", "exec", NAME}; it must exec vmxsim (not fork it),
	// so that stopping the shell stops it.
	Wrap []string
	// Stderr receives vmxsim's and the shell's stderr; nil discards it.
	Stderr io.Writer
}

// StartTrapShell starts `vmxsim run --dir Dir Args... -- /bin/sh` and
// returns once the simulator answers. The environment of the commands is
// the caller's without GOVMTOOLS_RPC (so --rpc auto, the default, is what
// runs) and with GOVMTOOLS_SIMULATED=1 and VMXSIM_DIR set by vmxsim.
func StartTrapShell(cfg TrapShellConfig) (*TrapShell, error) {
	argv := append([]string{"run", "--dir", cfg.Dir}, cfg.Args...)
	argv = append(argv, "--", "/bin/sh")
	argv = append(append(append([]string{}, cfg.Wrap...), cfg.VMXSim), argv...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = trapEnv()
	cmd.Stderr = cfg.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "govmtools-trapshell-")
	if err != nil {
		return nil, err
	}
	p, err := LaunchSim(cmd, cfg.Dir, 10*time.Second, nil)
	if err != nil {
		os.RemoveAll(scratch)
		return nil, fmt.Errorf("vmxsim run: %w", err)
	}
	return &TrapShell{Dir: cfg.Dir, proc: p, in: in, out: bufio.NewReader(stdout), scratch: scratch}, nil
}

func trapEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOVMTOOLS_RPC=") {
			env = append(env, kv)
		}
	}
	return env
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// commandLine is argv for sh, with extra environment variables ("K=V").
func commandLine(env []string, argv []string) string {
	var line strings.Builder
	if len(env) > 0 {
		line.WriteString("env")
		for _, kv := range env {
			line.WriteString(" " + shellQuote(kv))
		}
		line.WriteString(" ")
	}
	for i, a := range argv {
		if i > 0 {
			line.WriteString(" ")
		}
		line.WriteString(shellQuote(a))
	}
	return line.String()
}

// Exec runs one shell line, which sets $__r, and returns what $__r held
// once the line finished (within timeout).
func (s *TrapShell) Exec(line string, timeout time.Duration) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return "", s.broken
	}
	s.seq++
	marker := fmt.Sprintf("__trap_%d", s.seq)
	if _, err := fmt.Fprintf(s.in, "%s; echo %s \"$__r\"\n", line, marker); err != nil {
		s.broken = fmt.Errorf("trap shell gone: %w", err)
		return "", s.broken
	}
	type res struct {
		s   string
		err error
	}
	done := make(chan res, 1)
	go func() {
		for {
			l, err := s.out.ReadString('\n')
			if err != nil {
				done <- res{"", err}
				return
			}
			if rest, ok := strings.CutPrefix(l, marker+" "); ok {
				done <- res{strings.TrimSpace(rest), nil}
				return
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			s.broken = fmt.Errorf("trap shell: %w", r.err)
			return "", s.broken
		}
		return r.s, nil
	case <-time.After(timeout):
		s.broken = fmt.Errorf("trap shell: %q did not finish in %v", line, timeout)
		return "", s.broken
	}
}

// Run runs argv (with extra environment variables env) under the trap,
// with stdin from /dev/null, and returns its stdout, stderr and exit code
// (128+n for signal n).
func (s *TrapShell) Run(env []string, argv ...string) (stdout, stderr string, code int, err error) {
	tmp, err := os.MkdirTemp(s.scratch, "run-")
	if err != nil {
		return "", "", 0, err
	}
	defer os.RemoveAll(tmp)
	o, e := filepath.Join(tmp, "stdout"), filepath.Join(tmp, "stderr")
	rc, err := s.Exec(fmt.Sprintf("%s </dev/null >%s 2>%s; __r=$?", commandLine(env, argv), shellQuote(o), shellQuote(e)), 120*time.Second)
	if err != nil {
		return "", "", 0, err
	}
	if code, err = strconv.Atoi(rc); err != nil {
		return "", "", 0, fmt.Errorf("trap shell: bad exit code %q", rc)
	}
	ob, _ := os.ReadFile(o)
	eb, _ := os.ReadFile(e)
	return string(ob), string(eb), code, nil
}

// Start starts argv (with extra environment variables env) in the
// background under the trap, with stdin from /dev/null and its stdout and
// stderr in one file, and returns its pid and a function returning its
// output so far. It is an hgfswork.Starter.
func (s *TrapShell) Start(env []string, argv ...string) (pid int, output func() string, err error) {
	f, err := os.CreateTemp(s.scratch, "program-*.out")
	if err != nil {
		return 0, nil, err
	}
	o := f.Name()
	f.Close()
	rc, err := s.Exec(fmt.Sprintf("%s </dev/null >%s 2>&1 & __r=$!", commandLine(env, argv), shellQuote(o)), 120*time.Second)
	if err != nil {
		return 0, nil, err
	}
	if pid, err = strconv.Atoi(rc); err != nil {
		return 0, nil, fmt.Errorf("trap shell: bad pid %q", rc)
	}
	return pid, func() string {
		b, _ := os.ReadFile(o)
		return string(b)
	}, nil
}

// Wait waits for a process started with Start and returns its exit code
// (128+n for signal n).
func (s *TrapShell) Wait(pid int) (int, error) {
	rc, err := s.Exec(fmt.Sprintf("wait %d; __r=$?", pid), 120*time.Second)
	if err != nil {
		return 0, err
	}
	code, err := strconv.Atoi(rc)
	if err != nil {
		return 0, fmt.Errorf("trap shell: bad exit code %q", rc)
	}
	return code, nil
}

// Close tells the shell to exit and waits up to timeout for vmxsim run to
// exit, which it does once every program started under it has ended
// (unmount first); then it stops it with SIGTERM, and kills it 10 s
// later. It returns vmxsim's exit error, or ErrStopTimeout.
func (s *TrapShell) Close(timeout time.Duration) error {
	defer os.RemoveAll(s.scratch)
	s.in.Close() // the shell reads EOF and exits; then vmxsim exits
	select {
	case <-s.proc.Done():
		return s.proc.Err()
	case <-time.After(timeout):
	}
	s.proc.Stop(syscall.SIGTERM, 10*time.Second)
	return ErrStopTimeout
}

// Trap is a TrapShell for a test: its methods fail the test on error, and
// the test's end stops it.
type Trap struct {
	Dir string // the simulator directory: ctl.sock, vmware.log, ...
	Bin string // directory of the built binaries (Binaries)

	sh   *TrapShell
	logs *SyncBuffer // vmxsim's stderr and the shell's
}

// StartTrap starts `vmxsim run --dir <tempdir> args... -- sh` and returns
// once the simulator answers. args are vmxsim run's flags, for example
// "--lb" or "--ping-interval", "100ms". The environment of the commands is
// the test's, without GOVMTOOLS_RPC (so --rpc auto, the default, is what
// runs) and with GOVMTOOLS_SIMULATED=1 and VMXSIM_DIR set by vmxsim.
//
// At the end of the test the shell is told to exit and vmxsim must then
// exit cleanly and remove its sockets.
func StartTrap(t testing.TB, args ...string) *Trap {
	t.Helper()
	return StartTrapWrapped(t, nil, args...)
}

// StartTrapWrapped is StartTrap with `vmxsim run` started through the
// command prefix wrap, for example {"ip", "netns", "exec", NAME} to run
// the trap and everything under it inside a network namespace. The
// prefix must exec vmxsim (not fork it), so that stopping the trap stops
// it.
func StartTrapWrapped(t testing.TB, wrap []string, args ...string) *Trap {
	t.Helper()
	RequireTrap(t)
	bin := Binaries(t)
	tr := &Trap{Dir: t.TempDir(), Bin: bin, logs: &SyncBuffer{}}
	sh, err := StartTrapShell(TrapShellConfig{VMXSim: filepath.Join(bin, "vmxsim"), Dir: tr.Dir, Args: args, Wrap: wrap, Stderr: tr.logs})
	if err != nil {
		t.Fatalf("%v\n%s", err, tr.Logs())
	}
	tr.sh = sh
	t.Cleanup(func() { tr.stop(t) })
	return tr
}

// Logs returns what vmxsim and the shell have written to stderr so far.
func (tr *Trap) Logs() string { return tr.logs.String() }

// Run runs path with args under the trap, with stdin from /dev/null, and
// returns its stdout, stderr and exit code (128+n for signal n).
func (tr *Trap) Run(t testing.TB, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return tr.RunEnv(t, nil, path, args...)
}

// RunEnv is Run with extra environment variables ("K=V").
func (tr *Trap) RunEnv(t testing.TB, env []string, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code, err := tr.sh.Run(env, append([]string{path}, args...)...)
	if err != nil {
		t.Fatal(err) // vmxsim run's output is logged once, at the end
	}
	return stdout, stderr, code
}

// Start starts path with args in the background under the trap, with its
// stdout and stderr in one file, and returns its pid and a function
// returning its output so far.
func (tr *Trap) Start(t testing.TB, path string, args ...string) (pid int, output func() string) {
	t.Helper()
	pid, output, err := tr.sh.Start(nil, append([]string{path}, args...)...)
	if err != nil {
		t.Fatal(err) // vmxsim run's output is logged once, at the end
	}
	return pid, output
}

// Wait waits for a process started with Start and returns its exit code
// (128+n for signal n).
//
// A process that has not ended within a minute (a FUSE daemon that
// stays after its unmount, say) is reported once with its state
// (ProcState) and killed, so the shell stays usable and the test ends.
func (tr *Trap) Wait(t testing.TB, pid int) int {
	t.Helper()
	if !Poll(60*time.Second, func() bool { return processEnded(pid) }) {
		t.Errorf("pid %d under the trap did not exit within 60 s; killed. Its state:\n%s", pid, ProcState(pid))
		syscall.Kill(pid, syscall.SIGKILL) // started by this test, under its shell
	}
	code, err := tr.sh.Wait(pid)
	if err != nil {
		t.Fatal(err) // vmxsim run's output is logged once, at the end
	}
	return code
}

// processEnded reports whether pid is gone or a zombie.
func processEnded(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')') // comm may hold spaces and parentheses
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// ProcState describes a stuck process for a failure report: the head of
// /proc/PID/status, its kernel stack (root only) and each thread's state
// and wait channel.
func ProcState(pid int) string {
	var b strings.Builder
	dir := fmt.Sprintf("/proc/%d", pid)
	if st, err := os.ReadFile(dir + "/status"); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			for _, k := range []string{"Name:", "State:", "PPid:", "TracerPid:", "Threads:", "SigPnd:", "ShdPnd:", "SigBlk:"} {
				if strings.HasPrefix(l, k) {
					b.WriteString("  " + l + "\n")
				}
			}
		}
	} else {
		return fmt.Sprintf("  %v\n", err)
	}
	if stack, err := os.ReadFile(dir + "/stack"); err == nil && len(stack) > 0 {
		b.WriteString("  stack:\n")
		for _, l := range strings.Split(strings.TrimSpace(string(stack)), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	tasks, _ := os.ReadDir(dir + "/task")
	for _, task := range tasks {
		td := dir + "/task/" + task.Name()
		stat, _ := os.ReadFile(td + "/stat")
		state := "?"
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
			state = string(stat[i+2])
		}
		comm, _ := os.ReadFile(td + "/comm")
		wchan, _ := os.ReadFile(td + "/wchan")
		fmt.Fprintf(&b, "  thread %s (%s): %s wchan %s\n", task.Name(), strings.TrimSpace(string(comm)), state, wchan)
	}
	return b.String()
}

// Ctl runs `vmxsim ctl --dir Dir args...` and returns its output; it fails
// the test if ctl fails.
func (tr *Trap) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := RunBinary(t, filepath.Join(tr.Bin, "vmxsim"), append([]string{"ctl", "--dir", tr.Dir}, args...)...)
	if code != 0 {
		t.Fatalf("vmxsim ctl %q: %d %s", args, code, errOut)
	}
	return out
}

// State fetches `vmxsim ctl state` as decoded JSON.
func (tr *Trap) State(t testing.TB) map[string]any {
	t.Helper()
	out, errOut, code := RunBinary(t, filepath.Join(tr.Bin, "vmxsim"), "ctl", "--dir", tr.Dir, "state")
	if code != 0 {
		t.Fatalf("vmxsim ctl state: %d %s", code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (tr *Trap) stop(t testing.TB) {
	if !tr.sh.proc.Exited() {
		switch err := tr.sh.Close(15 * time.Second); {
		case errors.Is(err, ErrStopTimeout):
			t.Errorf("vmxsim run did not exit within 15 s of its shell's end (background processes left?)")
		case err != nil:
			t.Errorf("vmxsim run exited with %v", err)
		}
	}
	for _, name := range tr.sh.proc.SocketsLeft() {
		t.Errorf("vmxsim run left %s behind", name)
	}
	if t.Failed() {
		t.Logf("vmxsim run output:\n%s", tr.Logs())
	}
}

// RunTrap runs `vmxsim run --dir <tempdir> args... -- cmd...` to the end
// and returns its stdout, stderr and exit code (the program's), and the
// simulator directory, whose vmware.log (and trace, if asked for) remain.
func RunTrap(t testing.TB, args []string, cmd ...string) (stdout, stderr string, code int, dir string) {
	t.Helper()
	RequireTrap(t)
	bin := Binaries(t)
	dir = t.TempDir()
	argv := append(append([]string{"run", "--dir", dir}, args...), "--")
	argv = append(argv, cmd...)
	c := exec.Command(filepath.Join(bin, "vmxsim"), argv...)
	c.Env = trapEnv()
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	done := make(chan error, 1)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		c.Process.Kill()
		<-done
		t.Fatalf("vmxsim run %q did not finish in 120 s\n%s", cmd, e.String())
	}
	return o.String(), e.String(), c.ProcessState.ExitCode(), dir
}
