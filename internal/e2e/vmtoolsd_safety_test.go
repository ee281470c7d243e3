package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// TestVmtoolsdRefusesWhatUsersCanChange drives the real vmtoolsd through
// the tools.conf and power-script attacks: a world-writable tools.conf
// naming a new suspend-script, a reload that does not parse (twice), and
// a world-writable power script. Each is refused with a log line and
// nothing a user wrote runs as root.
func TestVmtoolsdRefusesWhatUsersCanChange(t *testing.T) {
	sim := testutil.StartSim(t)
	ctl := vmxsim.NewCtl(sim.Dir)
	conf := t.TempDir()
	script := func(name, marker string) {
		os.WriteFile(filepath.Join(conf, name), []byte("#!/bin/sh\necho ran >> "+filepath.Join(conf, marker)+"\n"), 0o755)
	}
	script("good.sh", "good")
	script("evil.sh", "evil")
	confPath := filepath.Join(conf, "tools.conf")
	os.WriteFile(confPath, []byte("[powerops]\nsuspend-script=good.sh\n"), 0o644)
	v := startVmtoolsd(t, sim, conf, nil)
	testutil.WaitFor(t, 10*time.Second, "statechange capability", func() bool {
		return strings.Contains(strings.Join(state(t, ctl).Capabilities, ","), "tools.capability.statechange")
	})
	ran := func(marker string) int {
		b, _ := os.ReadFile(filepath.Join(conf, marker))
		return strings.Count(string(b), "ran")
	}
	// suspend asks for a suspend and waits for its status; a success is
	// waited for as the good script's n-th run.
	suspend := func(wantOK bool, n int) {
		t.Helper()
		before := state(t, ctl).Power.StateChanges
		if reply, err := ctl.Power(t.Context(), "suspend"); err != nil {
			t.Fatalf("suspend: %q %v", reply, err)
		}
		// This suspend's own status: a new report, not the last one.
		testutil.WaitFor(t, 10*time.Second, "the suspend status", func() bool {
			p := state(t, ctl).Power
			sc := p.LastStateChange
			return p.StateChanges > before && sc != nil && sc.State == 5 && sc.Success == wantOK && (!wantOK || ran("good") >= n)
		})
	}
	count := func(s string) int { return strings.Count(v.out.String(), s) }
	waitLog := func(s string, n int) {
		t.Helper()
		testutil.WaitFor(t, 10*time.Second, "log "+s, func() bool { return count(s) >= n })
	}
	suspend(true, 1)
	if ran("good") != 1 {
		t.Fatal("the configured script did not run")
	}

	// tools.conf made world-writable, then a user names another script in
	// it: refused, the old configuration stays.
	os.Chmod(confPath, 0o666)
	os.WriteFile(confPath, []byte("[powerops]\nsuspend-script=evil.sh\n"), 0o644)
	v.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("tools.conf refused", 1)
	suspend(true, 2)
	if ran("evil") != 0 || ran("good") != 2 {
		t.Fatalf("after the world-writable tools.conf: evil ran %d, good %d times", ran("evil"), ran("good"))
	}

	// A reload that does not parse keeps the old file entirely, and the
	// same mistake made again is logged again.
	// (Written as editors do, to a new file renamed over the old one, so
	// no reload sees half a file.)
	put := func(content string) {
		tmp := confPath + ".new"
		os.WriteFile(tmp, []byte(content), 0o644)
		os.Rename(tmp, confPath)
	}
	for i := 1; i <= 2; i++ {
		put("[powerops\nsuspend-script=evil.sh\n")
		waitLog("tools.conf does not parse", i)
		// Counted from here: a reload logged before this good file (the
		// watcher may see an editor's steps apart) is not this one, and
		// the next broken file must follow a reload of the good one.
		reloads := count("tools.conf reloaded")
		put("[powerops]\nsuspend-script=good.sh\n# fixed\n")
		testutil.WaitFor(t, 10*time.Second, "the good file back", func() bool { return count("tools.conf reloaded") > reloads })
	}
	put("[powerops\nsuspend-script=evil.sh\n")
	waitLog("tools.conf does not parse", 3)
	suspend(true, 3)
	if ran("evil") != 0 || ran("good") != 3 {
		t.Fatalf("after broken reloads: evil ran %d, good %d times", ran("evil"), ran("good"))
	}

	// A power script anyone may change is not run.
	os.Chmod(filepath.Join(conf, "good.sh"), 0o777)
	suspend(false, 0)
	waitLog("power script refused", 1)
	if ran("good") != 3 {
		t.Fatal("a world-writable power script ran")
	}
	v.stop(t)
}

// TestVmtoolsdMissingConfig: -c naming a missing file is a warning (the
// default path missing is not).
func TestVmtoolsdMissingConfig(t *testing.T) {
	sim := testutil.StartSim(t)
	v := startVmtoolsd(t, sim, "", nil, "-c", filepath.Join(t.TempDir(), "no-such.conf"))
	testutil.WaitFor(t, 10*time.Second, "the warning", func() bool { return strings.Contains(v.out.String(), "tools.conf does not exist") })
	v.stop(t)
	w := startVmtoolsd(t, sim, "", nil)
	time.Sleep(500 * time.Millisecond)
	w.stop(t)
	if strings.Contains(w.out.String(), "does not exist") {
		t.Errorf("default tools.conf missing warned: %s", w.out.String())
	}
}
