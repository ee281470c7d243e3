package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fithaw is _IOWR('X', 120, int).
const fithaw = 0xC0045878

// LoopFS makes a small ext4 image on /dev/shm (tmpfs, which cannot be
// frozen, so a frozen loop file system never holds its own backing file),
// attaches it to a loop device, mounts it on a temp dir and returns the
// mount point and the device. These are the only file systems a test may
// freeze for real. Cleanup thaws it (harmless when it is not frozen),
// unmounts it, detaches the device and removes the image. Needs root,
// loop devices, mkfs.ext4 and losetup (scripts/test-deps.d/50-e2fsprogs.sh).
// Under user-mode emulation it is a documented skip (EmulatedFreeze): the
// emulator cannot freeze.
func LoopFS(t testing.TB) (mnt, dev string) {
	t.Helper()
	NotEmulated(t, EmulatedFreeze)
	RequireRoot(t)
	_, err := os.Stat("/dev/loop-control")
	Require(t, err == nil, "/dev/loop-control", "load the loop module, or give the container /dev/loop-control and /dev/loopN")
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount"} {
		_, err := exec.LookPath(tool)
		Require(t, err == nil, tool, "make test-deps (scripts/test-deps.d/50-e2fsprogs.sh installs e2fsprogs)")
	}
	shm, err := os.MkdirTemp("/dev/shm", "govmtools-loopfs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	img := filepath.Join(shm, "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("mkfs.ext4", "-q", "-F", img)
	dev = run("losetup", "--find", "--show", img)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	mnt = t.TempDir()
	run("mount", dev, mnt)
	t.Cleanup(func() {
		thawPath(mnt)
		for range 50 {
			if exec.Command("umount", mnt).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("cannot unmount %s", mnt)
	})
	// The interlock: mnt must be mounted from our loop device.
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mnt && strings.Contains(line, " - ext4 "+dev+" ") {
			found = true
		}
	}
	if !found {
		t.Fatalf("%s is not mounted from %s", mnt, dev)
	}
	return mnt, dev
}

func thawPath(p string) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fithaw, 0)
	unix.Close(fd)
}

// StartWrite starts a child process that writes a file in dir and syncs
// it; the channel gets its result. A child, because a writer blocked on a
// frozen file system cannot be interrupted until the thaw.
func StartWrite(t testing.TB, dir string) <-chan error {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `echo data > "$1"/f.$$ && sync -f "$1"`, "sh", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return ch
}

// WriteBlocks requires the write not to finish within 300 ms.
func WriteBlocks(t testing.TB, w <-chan error, what string) {
	t.Helper()
	select {
	case err := <-w:
		t.Fatalf("%s: the write finished while frozen (err %v)", what, err)
	case <-time.After(300 * time.Millisecond):
	}
}

// WriteCompletes requires the write to finish, without error, within d.
func WriteCompletes(t testing.TB, w <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-w:
		if err != nil {
			t.Fatalf("%s: write failed: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: the write still blocks after %v", what, d)
	}
}
