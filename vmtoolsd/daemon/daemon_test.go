package daemon

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

func TestNewChecksThePowerRunner(t *testing.T) {
	if _, err := New(Config{Simulated: true, PowerRunner: "system"}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("system runner under GOVMTOOLS_SIMULATED=1: %v", err)
	}
	if _, err := New(Config{PowerRunner: "halt-now"}); err == nil {
		t.Fatal("unknown runner accepted")
	}
	for _, c := range []struct {
		sim  bool
		want string
	}{{false, "system"}, {true, "record:"}} {
		d, err := New(Config{Simulated: c.sim, IsVMware: func() bool { return true }})
		if err != nil || d.runnerSpec != c.want {
			t.Fatalf("default runner (simulated %v): %v %+v", c.sim, err, d)
		}
	}
}

// TestSchema: the daemon's schema holds every group's keys, so a stock
// tools.conf draws no warning, and a typo does.
func TestSchema(t *testing.T) {
	f, err := toolsconf.Parse([]byte("[powerops]\npoweroff-script=x\n[timeSync]\nstep-threshold=5\n[vmtools]\nhide-tools-version=true\n" +
		"[logging]\nvmsvc.level=debug\n[guestinfo]\nexclude-nics=a*\n[guestosinfo]\nshort-name=x\n[timeSync]\ntypo=1\n"))
	if err != nil {
		t.Fatal(err)
	}
	problems := Schema().Check(f)
	if len(problems) != 1 || !strings.Contains(problems[0].String(), "typo") {
		t.Fatalf("problems %v, want one for the typo", problems)
	}
	if ConfLevel(f) != slog.LevelDebug {
		t.Fatal("vmsvc.level=debug")
	}
}
