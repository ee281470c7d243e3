package power

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestRPCIFailuresAreLogged: when the host refuses the state change
// status and the vmware.log line, each failure is logged (the status one
// as an error, the log line's at debug); when both succeed, neither is.
func TestRPCIFailuresAreLogged(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		h := newHarness(t)
		var log testutil.SyncBuffer
		h.ops.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if refuse {
			h.host.Reply = func([]byte) []byte { return []byte("0 refused") }
		}
		h.cmd(t, "OS_Reboot")
		if got := h.recorded(); len(got) != 1 || got[0] != "reboot" {
			t.Fatalf("refuse=%v: recorded %q", refuse, got)
		}
		out := log.String()
		for _, line := range []string{"cannot report state change status", "log rpci failed"} {
			if strings.Contains(out, line) != refuse {
				t.Errorf("refuse=%v: %q logged %v:\n%s", refuse, line, !refuse, out)
			}
		}
	}
}
