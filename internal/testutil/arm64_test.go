package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestArm64ExclusionsDocumented: every reason a test may be left out of
// the arm64 tier is written in CONTRIBUTING.md, word for word, under its
// key, so the list there is the list the guard enforces.
func TestArm64ExclusionsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ModuleRoot(t), "CONTRIBUTING.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(data)), " ")
	for _, k := range arm64ExclusionKeys() {
		why := Arm64Exclusions[k]
		if !strings.Contains(doc, "`"+k+"`: "+why) {
			t.Errorf("CONTRIBUTING.md does not list the arm64 exclusion `%s`: %s", k, why)
		}
	}
}

// TestEmulated follows the variable scripts/test-arm64.sh sets.
func TestEmulated(t *testing.T) {
	t.Setenv(EnvEmulator, "")
	if Emulated() {
		t.Error("Emulated with the variable empty")
	}
	t.Setenv(EnvEmulator, "/usr/bin/qemu-aarch64-static")
	if !Emulated() {
		t.Error("not Emulated with the variable set")
	}
}
