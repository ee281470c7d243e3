package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFuzzSeeds: every decoder of host, kernel and user-file bytes that
// issue 12 lists has a fuzz target that scripts/fuzz.sh (make fuzz)
// finds, with seed files in its package's testdata/fuzz/<Target>/ in Go's
// corpus format, so `go test` runs them and the fuzzer starts from them.
func TestFuzzSeeds(t *testing.T) {
	root := ModuleRoot(t)
	targets := map[string]string{
		"FuzzReadFrame":      "rpc/datamap",
		"FuzzReceive":        "rpc/sockchan",
		"FuzzRPCReply":       "rpc",
		"FuzzChannelReceive": "rpc/backdoor",
		"FuzzReadHostTime":   "rpc/backdoor",
		"FuzzLinkDump":       "guestinfo",
		"FuzzMountInfo":      "guestinfo",
		"FuzzResolvConf":     "guestinfo",
		"FuzzOSRelease":      "guestinfo",
		"FuzzUptime":         "guestinfo",
		"FuzzStateJSON":      "kmsgdump",
	}
	// What fuzz.sh runs: every `func Fuzz...(` in a _test.go file.
	out, err := exec.Command("grep", "-rHo", "--include=*_test.go", "^func Fuzz[A-Za-z0-9_]*(", root).Output()
	if err != nil {
		t.Fatalf("grep: %v", err)
	}
	found := map[string]string{}
	re := regexp.MustCompile(`^(.*):func (Fuzz[A-Za-z0-9_]*)\($`)
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			rel, _ := filepath.Rel(root, filepath.Dir(m[1]))
			found[m[2]+" "+rel] = m[1]
		}
	}
	for name, pkg := range targets {
		if _, ok := found[name+" "+pkg]; !ok {
			t.Errorf("%s: no fuzz target %s for make fuzz", pkg, name)
			continue
		}
		dir := filepath.Join(root, pkg, "testdata", "fuzz", name)
		ents, err := os.ReadDir(dir)
		if err != nil || len(ents) == 0 {
			t.Errorf("%s: no seed files in %s", name, dir)
			continue
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
				t.Errorf("%s: %s is not a Go corpus file", name, e.Name())
			}
		}
	}
}
