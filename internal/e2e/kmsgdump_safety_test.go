package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
)

// TestKmsgdumpRefusesUnsafeStateDir: an existing 0777 state directory in
// which a user planted symlinks for progress, inflight, archive and
// state.json is refused by the real binary with one error line; none of
// the root-owned files the links name is touched, and nothing is shipped
// or removed. A user-owned 0700 directory is refused the same way.
func TestKmsgdumpRefusesUnsafeStateDir(t *testing.T) {
	testutil.RequireRoot(t)
	sim := testutil.StartSim(t)
	root := t.TempDir()
	pstore, crash, _ := kmsgtest.WritePstore(t, root)
	before, _ := os.ReadDir(pstore)
	state := filepath.Join(root, "state")
	os.Mkdir(state, 0o777)
	os.Chmod(state, 0o777)
	victims := map[string]string{}
	for _, name := range []string{"progress", "inflight", "cursor", "channel", "state.json", "archive"} {
		v := filepath.Join(root, "victim-"+name)
		os.WriteFile(v, []byte("root's "+name+"\n"), 0o644)
		os.Symlink(v, filepath.Join(state, name))
		victims[v] = "root's " + name + "\n"
	}
	check := func(what string) {
		t.Helper()
		_, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, pstore, crash, state, "--once")...)
		if code == 0 || strings.Count(errOut, "state directory") != 1 {
			t.Fatalf("%s: exit %d, want a refusal in one line: %s", what, code, errOut)
		}
		for v, want := range victims {
			if b, _ := os.ReadFile(v); string(b) != want {
				t.Fatalf("%s: %s overwritten: %q", what, v, b)
			}
		}
		if after, _ := os.ReadDir(pstore); len(after) != len(before) {
			t.Fatalf("%s: pstore went from %d to %d files", what, len(before), len(after))
		}
		if g := guestLines(t, sim.Dir); len(g) != 0 {
			t.Fatalf("%s: shipped %q", what, g)
		}
	}
	check("0777 state directory")
	os.Chmod(state, 0o700)
	os.Chown(state, nobody, nobody)
	check("state directory owned by uid 65534")
	// Root's 0700 directory with the links still in it: the links are
	// not followed either.
	os.Chown(state, 0, 0)
	_, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, pstore, crash, state, "--once")...)
	if code == 0 || !strings.Contains(errOut, "symlink") {
		t.Fatalf("planted links in a good directory: exit %d: %s", code, errOut)
	}
	for v, want := range victims {
		if b, _ := os.ReadFile(v); string(b) != want {
			t.Fatalf("%s overwritten: %q", v, b)
		}
	}
}
