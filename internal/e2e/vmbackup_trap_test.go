package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestTrapFreezeAllow: under `vmxsim run --freeze-allow A`, fsfreeze(8)
// really freezes A (a loop file system this test made) and only records
// the freeze of B (another of its own loop file systems, so a trap bug
// could never freeze anything else).
func TestTrapFreezeAllow(t *testing.T) {
	fsfreeze, err := exec.LookPath("fsfreeze")
	testutil.Require(t, err == nil, "fsfreeze", "apt-get install util-linux")
	a, _ := testutil.LoopFS(t)
	b, _ := testutil.LoopFS(t)
	tr := testutil.StartTrap(t, "--log-level", "info", "--freeze-allow", a)

	if _, errOut, code := tr.Run(t, fsfreeze, "-f", b); code != 0 {
		t.Fatalf("fsfreeze -f B under the trap: %d %s", code, errOut)
	}
	testutil.WriteCompletes(t, testutil.StartWrite(t, b), 5*time.Second, "B, whose freeze was only recorded")
	if _, errOut, code := tr.Run(t, fsfreeze, "-u", b); code != 0 {
		t.Fatalf("fsfreeze -u B under the trap: %d %s", code, errOut)
	}
	testutil.WaitFor(t, 10*time.Second, "the recorded freeze and thaw in the trap's log", func() bool {
		l := tr.Logs()
		return strings.Contains(l, "trap: FIFREEZE recorded, not executed") && strings.Contains(l, "trap: FITHAW recorded, not executed") && strings.Contains(l, "path="+b)
	})

	if _, errOut, code := tr.Run(t, fsfreeze, "-f", a); code != 0 {
		t.Fatalf("fsfreeze -f A under the trap: %d %s", code, errOut)
	}
	w := testutil.StartWrite(t, a)
	testutil.WriteBlocks(t, w, "A, allowed")
	// A second freeze of the allowed file system is the kernel's EBUSY.
	if _, _, code := tr.Run(t, fsfreeze, "-f", a); code == 0 {
		t.Error("a second real freeze of A succeeded")
	}
	if _, errOut, code := tr.Run(t, fsfreeze, "-u", a); code != 0 {
		t.Fatalf("fsfreeze -u A under the trap: %d %s", code, errOut)
	}
	testutil.WriteCompletes(t, w, 5*time.Second, "A after the thaw")
	if !strings.Contains(tr.Logs(), "trap: FIFREEZE executed") {
		t.Error("the real freeze was not logged")
	}
}
