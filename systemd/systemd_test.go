package systemd

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"golang.org/x/sys/unix"
)

// listen makes a notify socket as systemd does: a unixgram socket.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	sock := listen(t, path)
	n, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.Ready("Tools running\nsecond line")
	if got := read(t, sock); got != "READY=1\nSTATUS=Tools running second line" {
		t.Fatalf("%q", got)
	}
	n.Status("Connecting")
	n.Watchdog()
	n.Stopping()
	for _, want := range []string{"STATUS=Connecting", "WATCHDOG=1", "STOPPING=1"} {
		if got := read(t, sock); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}

	// Abstract namespace.
	abs := "@govmtools-test-" + filepath.Base(t.TempDir())
	asock := listen(t, "\x00"+abs[1:])
	an, err := Open(abs)
	if err != nil {
		t.Fatal(err)
	}
	an.Watchdog()
	if got := read(t, asock); got != "WATCHDOG=1" {
		t.Fatal(got)
	}
	an.Close()

	// Not under systemd: nil notifier, every call a no-op.
	none, err := Open("")
	if err != nil || none != nil {
		t.Fatal(none, err)
	}
	if err := none.Ready("x"); err != nil || none.Close() != nil {
		t.Fatal("nil notifier must be a no-op")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("missing socket accepted")
	}
}

func TestWatchdogInterval(t *testing.T) {
	tests := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "42", 30 * time.Second, false},
		{"30000000", "43", 0, false},
		{"x", "", 0, true},
		{"0", "", 0, true},
		{"1", "y", 0, true},
	}
	for _, tt := range tests {
		got, err := WatchdogInterval(tt.usec, tt.pid, 42)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("WatchdogInterval(%q, %q) = %v, %v", tt.usec, tt.pid, got, err)
		}
	}
}

// TestWatchdogFollowsLiveness: fed while Alive is called, starved when it
// stops, so systemd restarts a daemon whose TCLO loop has stalled. It runs
// in a synctest bubble: the Timeout and the Alive cadence pass in the
// bubble's time, and the notify socket is drained without blocking once
// every goroutine is idle.
func TestWatchdogFollowsLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notify")
		sock := listen(t, path)
		n, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		w := &Watchdog{Notifier: n, Timeout: 200 * time.Millisecond} // fed every 100 ms
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		// fed counts the WATCHDOG=1 datagrams sent so far.
		raw, err := sock.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		fed := func() int {
			synctest.Wait()
			c := 0
			b := make([]byte, 64)
			for {
				k := -1
				raw.Read(func(fd uintptr) bool {
					k, _, _ = unix.Recvfrom(int(fd), b, unix.MSG_DONTWAIT)
					return true
				})
				if k < 0 {
					return c
				}
				if string(b[:k]) == "WATCHDOG=1" {
					c++
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
		if c := fed(); c != 0 {
			t.Fatalf("fed %d times before any sign of life", c)
		}
		for range 50 { // alive for 1 s
			w.Alive()
			time.Sleep(20 * time.Millisecond)
		}
		if c := fed(); c < 9 || c > 11 {
			t.Fatalf("fed %d times in 1 s while alive, want 10", c)
		}
		time.Sleep(300 * time.Millisecond) // the last Alive expires
		fed()
		time.Sleep(500 * time.Millisecond)
		if c := fed(); c != 0 {
			t.Fatalf("fed %d times after the loop stalled", c)
		}
	})
}

// TestUnitVerifies runs systemd-analyze verify on vmtoolsd.service, with
// ExecStart pointing at the freshly built binary, and requires it to say
// nothing at all: verify exits 0 on unknown keys and unparsable values
// and only prints them, so any output is a failure.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	testutil.Require(t, err == nil, "systemd-analyze", "apt-get install systemd")
	bin := testutil.Binaries(t)
	unit, err := os.ReadFile("vmtoolsd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/bin/vmtoolsd\n")) {
		t.Fatal("unit must start /usr/bin/vmtoolsd")
	}
	for _, want := range []string{"Type=notify", "ConditionVirtualization=vmware", "Before=cloud-init-local.service", "Restart=on-failure", "MemoryMax=", "WatchdogSec="} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %s", want)
		}
	}
	verify := func(name string, content []byte) string {
		dir := t.TempDir()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", "--man=no", p)
		out, err := cmd.CombinedOutput()
		s := strings.TrimSpace(string(out))
		if err != nil && s == "" {
			s = err.Error()
		}
		return s
	}
	local := bytes.ReplaceAll(unit, []byte("/usr/bin/vmtoolsd"), []byte(filepath.Join(bin, "vmtoolsd")))
	if out := verify("vmtoolsd.service", local); out != "" {
		t.Fatalf("systemd-analyze verify:\n%s", out)
	}
	// The check can fail: a typo is reported.
	bad := bytes.Replace(local, []byte("Restart=on-failure"), []byte("Restart=on-failur"), 1)
	if out := verify("vmtoolsd.service", bad); !strings.Contains(out, "on-failur") {
		t.Fatalf("a bad unit passed verify: %q", out)
	}
}
