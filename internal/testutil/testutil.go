// Package testutil is the shared test infrastructure: capability gates that
// skip with a fix-it hint (and fail instead under GOVMTOOLS_REQUIRE_ALL=1,
// as CI runs), WaitFor, building the real binaries once per test process,
// and starting the simulator binary: LaunchSim (the one launcher, also
// used by the benchmark), Sim (`vmxsim serve`) and Trap and TrapShell
// (a shell under `vmxsim run`). Only tests and the benchmark import it.
package testutil

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvRequireAll turns every capability skip into a failure.
const EnvRequireAll = "GOVMTOOLS_REQUIRE_ALL"

// Require skips the test when ok is false, saying what is missing and how
// to get it; under GOVMTOOLS_REQUIRE_ALL=1 it fails instead.
func Require(t testing.TB, ok bool, missing, hint string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(EnvRequireAll) == "1" {
		t.Fatalf("required capability missing: %s (%s); %s=1 forbids skipping", missing, hint, EnvRequireAll)
	}
	t.Skipf("needs %s: %s", missing, hint)
}

// RequireRoot requires uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "root", "run the tests as root, e.g. sudo make test")
}

// WaitFor polls cond every 10 ms until it is true or timeout passes, and
// fails the test then with what.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Poll is WaitFor for a caller that handles the timeout itself: it
// reports whether cond came true within timeout.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ModuleRoot returns the directory of go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("not inside the govmtools module")
	}
	return filepath.Dir(mod)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds every command of the module (cmd/... and the test
// helpers in internal/cmd/..., such as bdprobe) once per test process and
// returns the directory holding them. The directory lives
// until the process exits.
// Under emulation (the arm64 tier) the kernel must run the arm64
// binaries through qemu: it requires the binfmt_misc entry.
func Binaries(t testing.TB) string {
	t.Helper()
	if Emulated() {
		_, err := os.Stat(binfmtAarch64)
		Require(t, err == nil, "binfmt_misc's qemu-aarch64 entry ("+binfmtAarch64+") to exec the arm64 binaries", "run make test-deps as root (scripts/test-deps.d/46-binfmt-arm64.sh registers it)")
	}
	buildOnce.Do(func() {
		root := ModuleRoot(t)
		buildDir, buildErr = os.MkdirTemp("", "govmtools-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/...", "./internal/cmd/...")
		cmd.Dir = root
		cmd.Env = goEnv()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/... ./internal/cmd/...: %v\n%s", err, out.String())
			return
		}
		buildErr = crossHelper(root, buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// CrossCC is Debian's C cross compiler for arm64 (gcc-aarch64-linux-gnu,
// scripts/test-deps.d/48-cross-pam-arm64.sh).
const CrossCC = "aarch64-linux-gnu-gcc"

// crossHelper rebuilds vmware-vix-helper with cgo in the emulated arm64
// tier, where go build cross-compiles with CGO_ENABLED=0 (a helper that
// refuses every login): with Debian's cross compiler and the arm64 libpam
// and PAM modules from dpkg multiarch (48-cross-pam-arm64.sh), the kernel
// runs it through qemu with the arm64 loader and libraries under
// /usr/lib/aarch64-linux-gnu. Without them the helper stays the
// CGO_ENABLED=0 one, and RequireHelperPAM fails or skips the
// guest-operations tests.
func crossHelper(root, dir string) error {
	if !Emulated() || runtime.GOARCH != "arm64" || !CrossPAM() {
		return nil
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/vmware-vix-helper")
	cmd.Dir = root
	cmd.Env = append(goEnv(), "CGO_ENABLED=1", "CC="+CrossCC)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=1 CC=%s go build ./cmd/vmware-vix-helper: %v\n%s", CrossCC, err, out)
	}
	return nil
}

// CrossPAM reports whether this machine can build and run the arm64
// vmware-vix-helper with PAM: the cross compiler, and arm64 libpam and
// pam_unix (libpam0g-dev:arm64, libpam-modules:arm64).
func CrossPAM() bool {
	if _, err := exec.LookPath(CrossCC); err != nil {
		return false
	}
	for _, f := range []string{"/usr/lib/aarch64-linux-gnu/libpam.so", "/usr/lib/aarch64-linux-gnu/security/pam_unix.so", "/lib/ld-linux-aarch64.so.1"} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// binfmtAarch64 is the binfmt_misc entry Debian's qemu-user-static
// defines for aarch64 ELF files.
const binfmtAarch64 = "/proc/sys/fs/binfmt_misc/qemu-aarch64"

// goEnv is the environment of the go builds of Binaries and Govc: the
// binaries are built for the test binary's own architecture, so that the
// arm64 tier (GOARCH=arm64 under qemu-user) execs arm64 binaries, run
// through binfmt_misc (scripts/test-deps.d/46-binfmt-arm64.sh).
func goEnv() []string {
	return append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
}

// Sim is a running `vmxsim serve`.
type Sim struct {
	Dir  string
	Bin  string // directory of the binaries
	proc *SimProcess
	out  *SyncBuffer
}

// StartSim starts `vmxsim serve --dir <tempdir> args...` and waits until
// its control socket answers. It is stopped with SIGTERM at the end of the
// test, which checks that it exits cleanly and removes its sockets.
func StartSim(t testing.TB, args ...string) *Sim {
	t.Helper()
	return StartSimDir(t, t.TempDir(), args...)
}

// StartSimDir is StartSim in a given directory: a test that stops a
// simulator (Sim.Stop) can start a new one where the guest expects it, as
// a VMX restart looks to the guest.
func StartSimDir(t testing.TB, dir string, args ...string) *Sim {
	t.Helper()
	bin := Binaries(t)
	s := &Sim{Dir: dir, Bin: bin, out: &SyncBuffer{}}
	cmd := exec.Command(filepath.Join(bin, "vmxsim"), append([]string{"serve", "--dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	p, err := LaunchSim(cmd, dir, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.out.String())
	}
	s.proc = p
	t.Cleanup(func() { s.stop(t) })
	return s
}

// Mode is the --rpc value that reaches this simulator.
func (s *Sim) Mode() string { return "unix:" + s.Dir }

// Pid is the simulator process's pid (for tests that watch its memory).
func (s *Sim) Pid() int { return s.proc.Cmd.Process.Pid }

// Output returns what the simulator has logged so far.
func (s *Sim) Output() string { return s.out.String() }

// Stop stops the simulator now (SIGTERM), checking that it exits cleanly
// and removes its sockets.
func (s *Sim) Stop(t testing.TB) {
	t.Helper()
	s.stop(t)
}

// Kill kills the simulator (SIGKILL), as a host that disappears at
// once; it waits for the process to end. Its socket files stay behind.
func (s *Sim) Kill(t testing.TB) {
	t.Helper()
	if err := s.proc.Stop(syscall.SIGKILL, 10*time.Second); errors.Is(err, ErrStopTimeout) {
		t.Fatalf("vmxsim did not die of SIGKILL within 10 s")
	}
}

func (s *Sim) stop(t testing.TB) {
	if s.proc.Exited() {
		return
	}
	switch err := s.proc.Stop(syscall.SIGTERM, 10*time.Second); {
	case errors.Is(err, ErrStopTimeout):
		t.Errorf("vmxsim did not stop within 10 s of SIGTERM; output:\n%s", s.Output())
	case err != nil:
		t.Errorf("vmxsim exited with %v; output:\n%s", err, s.Output())
	}
	for _, name := range s.proc.SocketsLeft() {
		t.Errorf("vmxsim left %s behind", name)
	}
	if t.Failed() {
		t.Logf("vmxsim output:\n%s", s.Output())
	}
}

var (
	govcOnce sync.Once
	govcPath string
	govcErr  error
)

// Govc builds govmomi's govc (internal/govc, from govmomi's cli
// packages) once per test process and returns its path.
func Govc(t testing.TB) string {
	t.Helper()
	govcOnce.Do(func() {
		dir, err := os.MkdirTemp("", "govmtools-govc-")
		if err != nil {
			govcErr = err
			return
		}
		govcPath = filepath.Join(dir, "govc")
		cmd := exec.Command("go", "build", "-o", govcPath, "./internal/govc")
		cmd.Dir = ModuleRoot(t)
		cmd.Env = goEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			govcErr = fmt.Errorf("go build ./internal/govc: %v\n%s", err, out)
		}
	})
	if govcErr != nil {
		t.Fatal(govcErr)
	}
	return govcPath
}

// Run runs one of the built binaries with args and returns its stdout,
// stderr and exit code.
func (s *Sim) Run(t testing.TB, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunBinary(t, filepath.Join(s.Bin, name), args...)
}

// RunBinary runs path with args, with a 60 s limit.
func RunBinary(t testing.TB, path string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return o.String(), e.String(), code
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent
// readers, for a child process's output that a test polls.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// RequireFUSE requires root and /dev/fuse, which mounting needs.
func RequireFUSE(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	_, err := os.Stat("/dev/fuse")
	Require(t, err == nil, "/dev/fuse", "load the fuse module (modprobe fuse) or run in a container with --device /dev/fuse")
}

// ReadHex loads a golden vector from the package's testdata directory:
// hex digits with any whitespace, and '#' comments to the end of a line.
func ReadHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for line := range strings.SplitSeq(string(raw), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}
