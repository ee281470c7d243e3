package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVmxsimPackageSize keeps the simulator split by protocol: no package
// under vmxsim/ holds more than 2,500 lines of non-test Go, so a new
// protocol or HGFS op lands in the package that owns it instead of
// growing one flat package again.
func TestVmxsimPackageSize(t *testing.T) {
	const limit = 2500
	root := filepath.Join(ModuleRoot(t), "vmxsim")
	lines := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ModuleRoot(t), filepath.Dir(path))
		lines[rel] += bytes.Count(b, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 5 {
		t.Fatalf("found %d vmxsim packages (%v), want the protocol split", len(lines), lines)
	}
	for pkg, n := range lines {
		if n > limit {
			t.Errorf("%s: %d lines of non-test Go, want at most %d: split it by protocol", pkg, n, limit)
		}
		t.Logf("%s: %d lines", pkg, n)
	}
}
