package e2e

import (
	"debug/elf"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestBinariesMatchArch: the binaries the e2e tests exec are built for
// the test binary's own architecture, so the arm64 tier (under qemu-user)
// drives arm64 builds of every command, not the host's amd64 ones.
func TestBinariesMatchArch(t *testing.T) {
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if want == elf.EM_NONE {
		testutil.NotApplicable(t, "the e2e tiers run on amd64 and arm64 only")
	}
	dir := testutil.Binaries(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		f, err := elf.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if f.Machine != want {
			t.Errorf("%s is built for %v, the tests run as %s (%v)", e.Name(), f.Machine, runtime.GOARCH, want)
		}
		f.Close()
		n++
	}
	if n < 5 {
		t.Errorf("only %d binaries in %s", n, dir)
	}
}
