package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxSimPackageLines bounds each vmxsim package (its non-test Go files):
// a package that grows past it holds more than one protocol and is split.
const maxSimPackageLines = 2500

// TestSimPackageSize fails when a package under vmxsim/ has more than
// maxSimPackageLines lines of non-test Go.
func TestSimPackageSize(t *testing.T) {
	root := ModuleRoot(t)
	lines := map[string]int{}
	err := filepath.WalkDir(filepath.Join(root, "vmxsim"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		lines[rel] += bytes.Count(b, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 5 {
		t.Fatalf("found only %d vmxsim packages: %v", len(lines), lines)
	}
	for pkg, n := range lines {
		if n > maxSimPackageLines {
			t.Errorf("%s has %d lines of Go, at most %d: split it", pkg, n, maxSimPackageLines)
		}
	}
}
