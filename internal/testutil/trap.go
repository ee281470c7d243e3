package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
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
func RequireTrap(t testing.TB) {
	t.Helper()
	Require(t, runtime.GOOS == "linux" && runtime.GOARCH == "amd64", "linux/amd64 for the ptrace trap (vmxsim run)", "run the trap tier on an x86-64 Linux machine")
	scope, _ := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	Require(t, strings.TrimSpace(string(scope)) != "3", "ptrace (kernel.yama.ptrace_scope is 3)", "sysctl kernel.yama.ptrace_scope=1")
}

// Trap is a running `vmxsim run` whose traced program is a shell that runs
// the commands of Run and Start: everything they start runs under the
// trap, against one simulated VMX whose sockets and vmware.log are in Dir.
type Trap struct {
	Dir string // the simulator directory: ctl.sock, vmware.log, ...
	Bin string // directory of the built binaries (Binaries)

	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	logs *SyncBuffer // vmxsim's stderr and the shell's
	mu   sync.Mutex
	seq  int
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
	dir := t.TempDir()
	tr := &Trap{Dir: dir, Bin: bin, logs: &SyncBuffer{}}
	argv := append([]string{"run", "--dir", dir}, args...)
	argv = append(argv, "--", "/bin/sh")
	argv = append(append(append([]string{}, wrap...), filepath.Join(bin, "vmxsim")), argv...)
	tr.cmd = exec.Command(argv[0], argv[1:]...)
	tr.cmd.Env = trapEnv()
	tr.cmd.Stderr = tr.logs
	var err error
	if tr.in, err = tr.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := tr.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tr.out = bufio.NewReader(stdout)
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.stop(t) })
	WaitFor(t, 10*time.Second, "vmxsim run ctl.sock", func() bool {
		_, err := os.Stat(filepath.Join(dir, "ctl.sock"))
		return err == nil
	})
	return tr
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

// Logs returns what vmxsim and the shell have written to stderr so far.
func (tr *Trap) Logs() string { return tr.logs.String() }

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// exec runs one shell line and returns what it echoed on the marker line.
func (tr *Trap) exec(t testing.TB, line string) string {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.seq++
	marker := fmt.Sprintf("__trap_%d", tr.seq)
	if _, err := fmt.Fprintf(tr.in, "%s; echo %s \"$__r\"\n", line, marker); err != nil {
		t.Fatalf("trap shell gone: %v\n%s", err, tr.Logs())
	}
	type res struct {
		s   string
		err error
	}
	done := make(chan res, 1)
	go func() {
		for {
			l, err := tr.out.ReadString('\n')
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
			t.Fatalf("trap shell: %v\n%s", r.err, tr.Logs())
		}
		return r.s
	case <-time.After(120 * time.Second):
		t.Fatalf("trap shell: %q did not finish in 120 s\n%s", line, tr.Logs())
		return ""
	}
}

// Run runs path with args under the trap, with stdin from /dev/null, and
// returns its stdout, stderr and exit code (128+n for signal n).
func (tr *Trap) Run(t testing.TB, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return tr.RunEnv(t, nil, path, args...)
}

// RunEnv is Run with extra environment variables ("K=V").
func (tr *Trap) RunEnv(t testing.TB, env []string, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	tmp := t.TempDir()
	o, e := filepath.Join(tmp, "stdout"), filepath.Join(tmp, "stderr")
	var line strings.Builder
	if len(env) > 0 {
		line.WriteString("env")
		for _, kv := range env {
			line.WriteString(" " + shellQuote(kv))
		}
		line.WriteString(" ")
	}
	line.WriteString(shellQuote(path))
	for _, a := range args {
		line.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&line, " </dev/null >%s 2>%s; __r=$?", shellQuote(o), shellQuote(e))
	rc := tr.exec(t, line.String())
	code, err := strconv.Atoi(rc)
	if err != nil {
		t.Fatalf("trap shell: bad exit code %q", rc)
	}
	ob, _ := os.ReadFile(o)
	eb, _ := os.ReadFile(e)
	return string(ob), string(eb), code
}

// Start starts path with args in the background under the trap, with its
// stdout and stderr in files of a temporary directory, and returns its pid
// and a function returning its output so far.
func (tr *Trap) Start(t testing.TB, path string, args ...string) (pid int, output func() string) {
	t.Helper()
	tmp := t.TempDir()
	o := filepath.Join(tmp, "output")
	var line strings.Builder
	line.WriteString(shellQuote(path))
	for _, a := range args {
		line.WriteString(" " + shellQuote(a))
	}
	fmt.Fprintf(&line, " </dev/null >%s 2>&1 & __r=$!", shellQuote(o))
	rc := tr.exec(t, line.String())
	pid, err := strconv.Atoi(rc)
	if err != nil {
		t.Fatalf("trap shell: bad pid %q", rc)
	}
	return pid, func() string {
		b, _ := os.ReadFile(o)
		return string(b)
	}
}

// Wait waits for a process started with Start and returns its exit code
// (128+n for signal n).
func (tr *Trap) Wait(t testing.TB, pid int) int {
	t.Helper()
	rc := tr.exec(t, fmt.Sprintf("wait %d; __r=$?", pid))
	code, err := strconv.Atoi(rc)
	if err != nil {
		t.Fatalf("trap shell: bad exit code %q", rc)
	}
	return code
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
		t.Fatalf("vmxsim ctl state: %d %s\n%s", code, errOut, tr.Logs())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (tr *Trap) stop(t testing.TB) {
	if tr.cmd.ProcessState == nil {
		tr.in.Close() // the shell reads EOF and exits; then vmxsim exits
		done := make(chan error, 1)
		go func() { done <- tr.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("vmxsim run exited with %v\n%s", err, tr.Logs())
			}
		case <-time.After(15 * time.Second):
			tr.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				tr.cmd.Process.Kill()
				<-done
			}
			t.Errorf("vmxsim run did not exit within 15 s of its shell's end (background processes left?)\n%s", tr.Logs())
		}
	}
	for _, name := range []string{"tclo.sock", "rpci.sock", "ctl.sock"} {
		if _, err := os.Stat(filepath.Join(tr.Dir, name)); err == nil {
			t.Errorf("vmxsim run left %s behind", name)
		}
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
