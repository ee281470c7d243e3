package vmbackup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

// The test binary doubles as the guard and as a "daemon" that freezes a
// loop file system and waits to be killed.
const roleEnv = "GOVMTOOLS_VMBACKUP_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "guard":
		os.Exit(GuardMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	case "freezer":
		os.Exit(freezerChild(os.Getenv("GOVMTOOLS_VMBACKUP_TEST_PATH"), os.Getenv("GOVMTOOLS_VMBACKUP_TEST_DEADLINE")))
	}
	os.Exit(m.Run())
}

// testGuard starts this test binary as the guard.
func testGuard() StartGuard {
	g := ExecGuard{Path: os.Args[0], Args: []string{GuardCommand}, Env: append(os.Environ(), roleEnv+"=guard")}
	return g.Start
}

// freezerChild freezes path through the sync driver with a guard, says
// FROZEN and sleeps until killed.
func freezerChild(path, deadline string) int {
	var dl Deadline
	fmt.Sscan(deadline, &dl)
	d := &SyncDriver{
		Freezer: LinuxFreezer{},
		Mounts:  func() ([]Mount, error) { return []Mount{{Dev: "7:999", Path: path, FSType: "ext4"}}, nil },
		Sync:    SystemSync,
		Guard:   testGuard(),
		Logger:  discard(),
	}
	if _, err := d.Freeze(context.Background(), dl); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("FROZEN")
	time.Sleep(time.Hour)
	return 0
}

func loopFS(t *testing.T) string {
	mnt, _ := testutil.LoopFS(t)
	return mnt
}

func startWrite(t *testing.T, dir string) <-chan error { return testutil.StartWrite(t, dir) }

func blocked(t *testing.T, w <-chan error, what string) { t.Helper(); testutil.WriteBlocks(t, w, what) }

func completes(t *testing.T, w <-chan error, d time.Duration, what string) {
	t.Helper()
	testutil.WriteCompletes(t, w, d, what)
}

// TestLinuxFreezerLoop freezes the test's own loop file system with the
// real ioctls: a write blocks while frozen and completes after the thaw;
// a second FIFREEZE answers EBUSY with the same fsid.
func TestLinuxFreezerLoop(t *testing.T) {
	mnt := loopFS(t)
	f, err := LinuxFreezer{}.Freeze(mnt)
	if err != nil {
		t.Fatal(err)
	}
	w := startWrite(t, mnt)
	blocked(t, w, "frozen")
	_, err = LinuxFreezer{}.Freeze(mnt)
	var fe *FreezeError
	if !errors.Is(err, syscall.EBUSY) || !errors.As(err, &fe) || fe.Fsid != f.Fsid || f.Fsid == ([2]int64{}) {
		t.Errorf("second freeze: %v (fsid %v, first %v)", err, fe, f.Fsid)
	}
	if err := (LinuxFreezer{}).Thaw(f); err != nil {
		t.Fatal(err)
	}
	LinuxFreezer{}.Close(f)
	completes(t, w, 5*time.Second, "thawed")
	if err := ThawPath(mnt); err != nil {
		t.Errorf("ThawPath on a thawed fs: %v", err)
	}
}

// TestLinuxFreezerTmpfs: tmpfs cannot be frozen (EOPNOTSUPP), on a tmpfs
// this test mounts.
func TestLinuxFreezerTmpfs(t *testing.T) {
	testutil.NotEmulated(t, testutil.EmulatedFreeze)
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "govmtools-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	_, err := LinuxFreezer{}.Freeze(dir)
	if !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("tmpfs: %v", err)
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := (LinuxFreezer{}).Freeze(file); !errors.Is(err, ErrNotDir) {
		t.Errorf("file: %v", err)
	}
}

// TestServiceLoop drives the whole service through the fake VMX with the
// real Freezer on the test's loop file system (the only mount it lists).
func TestServiceLoop(t *testing.T) {
	mnt := loopFS(t)
	host := &rpctest.RPCIHost{Reply: func([]byte) []byte { return []byte("1 ") }}
	frozen := make(chan []string, 1)
	svc := &Service{
		RPCI:     &rpc.Client{Dial: host.Dial},
		Settings: func() Settings { s := DefaultSettings(); s.ManifestDir = t.TempDir(); return s },
		Mounts:   loopOnly(mnt),
		Guard:    testGuard(),
		Scripts:  &Scripts{Dir: "/nonexistent", PreFreeze: "-", PostThaw: "-"},
		OnFrozen: func(p []string) { frozen <- p },
	}
	mux := &rpc.Mux{}
	svc.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if r := string(mux.Dispatch(ctx, []byte("vmbackup.start 1"))); r != "OK " {
		t.Fatal(r)
	}
	if p := <-frozen; len(p) != 1 || p[0] != mnt {
		t.Fatalf("froze %q", p)
	}
	w := startWrite(t, mnt)
	blocked(t, w, "frozen")
	if r := string(mux.Dispatch(ctx, []byte("vmbackup.snapshotDone"))); r != "OK " {
		t.Fatal(r)
	}
	completes(t, w, 5*time.Second, "after snapshotDone")
}

// loopOnly lists the real mountinfo entry of mnt and nothing else.
func loopOnly(mnt string) func() ([]Mount, error) {
	return func() ([]Mount, error) {
		ms, err := ReadMounts()
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Path == mnt {
				return []Mount{m}, nil
			}
		}
		return nil, fmt.Errorf("%s not mounted", mnt)
	}
}

// TestGuardThawsAfterSIGKILL: a process freezes the loop file system
// through the sync driver with a guard and is SIGKILLed; the guard sees
// the pipe close and thaws, and the blocked write completes.
func TestGuardThawsAfterSIGKILL(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline string
		kill     bool
	}{{"sigkill", "600", true}, {"deadline", "2", false}} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := loopFS(t)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), roleEnv+"=freezer", "GOVMTOOLS_VMBACKUP_TEST_PATH="+mnt, "GOVMTOOLS_VMBACKUP_TEST_DEADLINE="+tc.deadline)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr testutil.SyncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "FROZEN\n" {
				t.Fatalf("child: %q %s", line, stderr.String())
			}
			w := startWrite(t, mnt)
			blocked(t, w, "frozen")
			start := time.Now()
			if tc.kill {
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()
			}
			completes(t, w, 10*time.Second, "after "+tc.name)
			if !tc.kill && time.Since(start) < time.Second {
				t.Errorf("thawed after %v, before the deadline", time.Since(start))
			}
			testutil.WaitFor(t, 10*time.Second, "the guard's log", func() bool { return strings.Contains(stderr.String(), "thawed "+mnt) })
		})
	}
}
