package power

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// nobody is the throwaway uid the attack files are given.
const nobody = 65534

// TestUntrustedScriptsRefused: a power script that anyone but root could
// change is not run, the state change fails, and one log line says why.
func TestUntrustedScriptsRefused(t *testing.T) {
	testutil.RequireRoot(t)
	attacks := map[string]struct {
		key    string // [powerops] key, "" for the default script
		attack func(t *testing.T, h *harness, script string) string
	}{
		"world-writable script": {"suspend-script", func(t *testing.T, h *harness, script string) string {
			os.Chmod(script, 0o777)
			return script
		}},
		"user-owned script": {"suspend-script", func(t *testing.T, h *harness, script string) string {
			os.Chown(script, nobody, nobody)
			return script
		}},
		"default script symlinked to a user's script": {"", func(t *testing.T, h *harness, script string) string {
			user := filepath.Join(t.TempDir(), "home")
			os.Mkdir(user, 0o755)
			os.Chown(user, nobody, nobody)
			evil := filepath.Join(user, "evil.sh")
			b, _ := os.ReadFile(script)
			os.WriteFile(evil, b, 0o755)
			os.Chown(evil, nobody, nobody)
			os.Remove(script)
			os.Symlink(evil, script)
			return script
		}},
		"script in a world-writable directory": {"suspend-script", func(t *testing.T, h *harness, script string) string {
			d := filepath.Join(h.ops.ConfDir, "scripts")
			os.Mkdir(d, 0o755)
			p := filepath.Join(d, "s.sh")
			os.Rename(script, p)
			os.Chmod(d, 0o777)
			return p
		}},
		"script in a user-owned directory": {"suspend-script", func(t *testing.T, h *harness, script string) string {
			d := filepath.Join(h.ops.ConfDir, "scripts")
			os.Mkdir(d, 0o755)
			p := filepath.Join(d, "s.sh")
			os.Rename(script, p)
			os.Chown(d, nobody, nobody)
			return p
		}},
	}
	for name, a := range attacks {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			var log testutil.SyncBuffer
			h.ops.Logger = slog.New(slog.NewTextHandler(&log, nil))
			marker := filepath.Join(h.ops.ConfDir, "ran")
			script := h.script(t, "suspend-vm-default", "touch "+marker)
			p := a.attack(t, h, script)
			if a.key != "" {
				h.set(a.key, p)
			}
			if got := h.cmd(t, "OS_Suspend"); got == "OK " {
				t.Fatalf("reply %q, want the start failure", got)
			}
			if got := h.waitStatuses(t, 1); got[0] != "tools.os.statechange.status 0 5\x00" {
				t.Fatalf("status %q", got)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the untrusted script ran")
			}
			if n := strings.Count(log.String(), "power script refused"); n != 1 {
				t.Fatalf("%d refusal lines: %s", n, log.String())
			}
		})
	}
	// The same script, trusted again, runs.
	h := newHarness(t)
	marker := filepath.Join(h.ops.ConfDir, "ran")
	h.script(t, "suspend-vm-default", "touch "+marker)
	if got := h.cmd(t, "OS_Suspend"); got != "OK " {
		t.Fatalf("trusted script: %q", got)
	}
	testutil.WaitFor(t, 10e9, "the trusted script", func() bool { _, err := os.Stat(marker); return err == nil })
}
