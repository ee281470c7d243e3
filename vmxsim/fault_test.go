package vmxsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

// TestHoldRPCI runs in a synctest bubble: synctest.Wait returns once a
// held request is blocked.
func TestHoldRPCI(t *testing.T) { synctest.Test(t, testHoldRPCI) }

func testHoldRPCI(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "vmware.log")
	c := newCore(t, Options{LogPath: logPath})
	guestLines := func() int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "Guest: ")
	}
	c.HoldRPCI("log", 0)
	// Other commands pass.
	if r := string(c.RPCI(t.Context(), Caller{}, []byte("info-set guestinfo.a b"))); r != "1 " {
		t.Fatalf("info-set while log held: %q", r)
	}
	reply := make(chan string, 2)
	go func() { reply <- string(c.RPCI(t.Context(), Caller{}, []byte("log one"))) }()
	waitHeld(t, c, 1)
	if guestLines() != 0 {
		t.Fatal("a held log line was written")
	}
	c.ReleaseRPCI(false)
	if r := <-reply; r != "1 " || guestLines() != 1 {
		t.Fatalf("released: reply %q, %d lines", r, guestLines())
	}

	c.HoldRPCI("log", 2)
	for range 2 { // two pass first
		if r := string(c.RPCI(t.Context(), Caller{}, []byte("log passing"))); r != "1 " {
			t.Fatalf("passing: %q", r)
		}
	}
	go func() { reply <- string(c.RPCI(t.Context(), Caller{}, []byte("log two"))) }()
	waitHeld(t, c, 1)
	c.ReleaseRPCI(true)
	if r := <-reply; r != "0 Dropped" || guestLines() != 3 {
		t.Fatalf("dropped: reply %q, %d lines", r, guestLines())
	}
	// Not held any more.
	if r := string(c.RPCI(t.Context(), Caller{}, []byte("log three"))); r != "1 " || guestLines() != 4 {
		t.Fatalf("after release: %q", r)
	}
}

// waitHeld waits until every request sent is blocked, then checks that n
// are held.
func waitHeld(t *testing.T, c *Core, n int) {
	t.Helper()
	synctest.Wait()
	if got := c.HeldRPCI(); got != n {
		t.Fatalf("held = %d, want %d", got, n)
	}
}
