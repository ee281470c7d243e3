package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitForLimit is a WaitFor call with a literal limit (built from pieces
// so that this file does not match itself).
var waitForLimit = regexp.MustCompile(`Wait` + `For\(\w+, ([0-9.e]+ ?\* ?time\.(?:Second|Millisecond)|time\.(?:Second|Millisecond)|[0-9.]+e9),`)

// TestWallClockLimits: a wall-clock limit in a test is a hang detector
// (10 s or more, the 2-CPU shared machines run other builds meanwhile);
// speed targets belong in the bench.
func TestWallClockLimits(t *testing.T) {
	root := ModuleRoot(t)
	cmd := exec.Command("git", "ls-files", "-z", "*_test.go")
	cmd.Dir = root
	out, err := cmd.Output()
	Require(t, err == nil, "a git checkout", "run the tests in a clone")
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		for _, m := range waitForLimit.FindAllStringSubmatch(string(b), -1) {
			if d := literalDuration(m[1]); d < 10*time.Second {
				t.Errorf("%s: %s waits at most %v; a wall-clock limit is a hang detector of 10 s or more", f, m[0], d)
			}
		}
	}
}

// literalDuration evaluates "N*time.Second", "time.Millisecond" or "Ne9".
func literalDuration(s string) time.Duration {
	s = strings.ReplaceAll(s, " ", "")
	n, unit, ok := strings.Cut(s, "*")
	if !ok {
		if strings.HasPrefix(s, "time.") {
			n, unit = "1", s
		} else {
			unit = ""
		}
	}
	v, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return 0
	}
	switch unit {
	case "time.Second":
		v *= 1e9
	case "time.Millisecond":
		v *= 1e6
	}
	return time.Duration(v)
}

func TestLiteralDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"5*time.Second": 5 * time.Second, "time.Second": time.Second, "10e9": 10 * time.Second, "200 * time.Millisecond": 200 * time.Millisecond} {
		if got := literalDuration(s); got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
}
