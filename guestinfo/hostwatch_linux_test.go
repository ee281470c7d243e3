package guestinfo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"golang.org/x/sys/unix"
)

// startHostWatch runs w until the test ends and returns its events.
func startHostWatch(t *testing.T, w *HostWatch) <-chan struct{} {
	t.Helper()
	ev := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func() { ev <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Watch did not return after cancel")
		}
	})
	return ev
}

// expectEvent does action until the watcher reports an event (the first
// tries may come before its watches are set up), then drains the events
// one change may cause (create, then close-write).
func expectEvent(t *testing.T, ev <-chan struct{}, what string, action func()) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		action()
		select {
		case <-ev:
			settle(t)
			for len(ev) > 0 {
				<-ev
			}
			return
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				t.Fatalf("no event for %s", what)
			}
		}
	}
}

// expectQuiet checks that the change just made caused no event: once
// the watcher has read and handled everything the kernel queued for it,
// nothing may have been reported.
func expectQuiet(t *testing.T, ev <-chan struct{}, what string) {
	t.Helper()
	settle(t)
	if len(ev) > 0 {
		t.Fatalf("an event for %s", what)
	}
}

// settle waits until the file watcher has consumed every inotify event
// queued so far (the kernel queues them before the change's syscall
// returns) and handled them: its inotify descriptor has nothing to read
// (FIONREAD, TIOCINQ in x/sys) and its goroutine is parked reading again. Tests here run one
// watcher at a time.
func settle(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "the watcher to handle every queued event", func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, e := range fds {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:inotify" {
				continue
			}
			var fd int
			fmt.Sscan(e.Name(), &fd)
			if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil || n != 0 {
				return false
			}
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			for _, g := range strings.Split(string(buf), "\n\n") {
				if strings.Contains(g, "[IO wait") && strings.Contains(g, "guestinfo.(*HostWatch).watchFiles") {
					return true
				}
			}
			return false
		}
		return false
	})
}

// TestHostWatchFiles: os-release and resolv.conf changes under the root
// are reported (written in place or replaced by rename, as editors and
// package managers do); other files in the same directories are not.
func TestHostWatchFiles(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/lib", "proc/sys/kernel"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// A regular file never reports POLLPRI: the host name stays quiet.
	os.WriteFile(filepath.Join(root, "proc/sys/kernel/hostname"), []byte("vm1\n"), 0o644)
	ev := startHostWatch(t, &HostWatch{Sys: &System{Root: root}})

	expectEvent(t, ev, "/etc/resolv.conf written", func() {
		os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
	})
	os.WriteFile(filepath.Join(root, "etc/motd"), []byte("hello\n"), 0o644)
	expectQuiet(t, ev, "/etc/motd")
	tmp := filepath.Join(root, "usr/lib/.os-release.new")
	os.WriteFile(tmp, []byte("NAME=Test\n"), 0o644)
	expectQuiet(t, ev, "a temporary file")
	expectEvent(t, ev, "/usr/lib/os-release replaced", func() {
		os.WriteFile(tmp, []byte("NAME=Test\n"), 0o644)
		os.Rename(tmp, filepath.Join(root, "usr/lib/os-release"))
	})
}

// TestHostWatchHostname: sethostname wakes the watcher. The host name is
// changed in a new UTS namespace (unshare), never the machine's: the
// kernel's hostname poll queue is shared by all namespaces.
func TestHostWatchHostname(t *testing.T) {
	testutil.RequireRoot(t)
	unshare, err := exec.LookPath("unshare")
	testutil.Require(t, err == nil, "unshare (util-linux)", "apt-get install util-linux")
	// The real hostname sysctl, and quiet directories for inotify (so no
	// change elsewhere in /etc passes for the event).
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink("/proc", filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	ev := startHostWatch(t, &HostWatch{Sys: &System{Root: root}})
	expectEvent(t, ev, "sethostname in another UTS namespace", func() {
		if out, err := exec.Command(unshare, "--uts", "hostname", fmt.Sprintf("gi-test-%d", os.Getpid())).CombinedOutput(); err != nil {
			t.Fatalf("unshare --uts hostname: %v\n%s", err, out)
		}
	})
	if h, _ := os.Hostname(); h == fmt.Sprintf("gi-test-%d", os.Getpid()) {
		t.Fatal("the machine's host name changed")
	}
}

// inotifyRead returns what one read of an inotify descriptor gives after
// two files are made in a watched directory: the kernel's own bytes.
func inotifyRead(t testing.TB) []byte {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dir := t.TempDir()
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hostname", "a-longer-name-than-sixteen-bytes"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestInotifyEvents(t *testing.T) {
	raw := inotifyRead(t)
	var got []string
	inotifyEvents(raw, func(wd int32, mask uint32, name string) {
		if wd != 1 || mask&unix.IN_CREATE == 0 {
			t.Errorf("event wd %d mask %#x", wd, mask)
		}
		got = append(got, name)
	})
	if want := []string{"hostname", "a-longer-name-than-sixteen-bytes"}; !slices.Equal(got, want) {
		t.Fatalf("names %q, want %q", got, want)
	}
	// A read cut anywhere yields only the whole events before the cut.
	for cut := range len(raw) {
		var names []string
		inotifyEvents(raw[:cut], func(_ int32, _ uint32, name string) { names = append(names, name) })
		if len(names) > 1 || len(names) == 1 && names[0] != "hostname" {
			t.Fatalf("cut at %d: %q", cut, names)
		}
	}
}

func FuzzInotifyEvents(f *testing.F) {
	f.Add(inotifyRead(f))
	f.Add(make([]byte, unix.SizeofInotifyEvent))
	f.Add([]byte("\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff\xffname"))
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		inotifyEvents(b, func(_ int32, _ uint32, name string) { total += unix.SizeofInotifyEvent + len(name) })
		if total > len(b) {
			t.Fatalf("events of %d bytes from a read of %d", total, len(b))
		}
	})
}
