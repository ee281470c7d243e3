package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestTrapCheckpointIdleChannel: `ctl backdoor checkpoint` fails the next
// transfer of every open channel, idle or not: a TCLO channel that only
// polls (RECVSIZE with nothing waiting) when the checkpoint lands meets
// CPT on the next command's payload, retries it and answers.
func TestTrapCheckpointIdleChannel(t *testing.T) {
	for _, mode := range []string{"hb", "lb"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--no-vsock", "--ping-interval", "1h"}
			if mode == "lb" {
				args = append(args, "--lb")
			}
			tr := testutil.StartTrap(t, args...)
			pid, output := tr.Start(t, filepath.Join(tr.Bin, "bdprobe"), "tclo")
			defer func() {
				syscall.Kill(pid, syscall.SIGKILL)
				tr.Wait(t, pid)
				if t.Failed() {
					t.Logf("bdprobe tclo:\n%s", output())
				}
			}()
			testutil.WaitFor(t, 10*time.Second, "the probe's TCLO channel bound", func() bool {
				tools, _ := tr.State(t)["tools"].(map[string]any)
				return tools["running"] == true
			})
			if out := tr.Ctl(t, "tclo", "Echo before"); !strings.Contains(out, "before") {
				t.Fatalf("Echo before: %q", out)
			}
			if n := bdCounters(tr.State(t))["cpts"]; n != 0 {
				t.Fatalf("%v CPTs before the checkpoint", n)
			}
			// The channel is idle now: the probe only polls.
			tr.Ctl(t, "backdoor", "checkpoint")
			if out := tr.Ctl(t, "tclo", "Echo after"); !strings.Contains(out, "after") {
				t.Fatalf("Echo after the checkpoint: %q", out)
			}
			if n := bdCounters(tr.State(t))["cpts"]; n != 1 {
				t.Fatalf("%v CPTs after a checkpoint of an idle channel, want 1", n)
			}
		})
	}
}
