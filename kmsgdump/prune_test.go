package kmsgdump

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestPruneArchiveKeepsExactlyMax: the newest maxArchive records stay,
// older ones go, dot files are left alone.
func TestPruneArchiveKeepsExactlyMax(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range maxArchive + 3 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d-rec", i)), nil, 0o600)
	}
	os.WriteFile(filepath.Join(dir, ".tmp"), nil, 0o600)
	d, err := openSecureDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	pruneArchive(d)
	ents, _ := os.ReadDir(dir)
	if len(ents) != maxArchive+1 || ents[0].Name() != ".tmp" || ents[1].Name() != "0003-rec" {
		t.Fatalf("%d entries left, first %s %s", len(ents), ents[0].Name(), ents[1].Name())
	}
	pruneArchive(d)
	if ents, _ := os.ReadDir(dir); len(ents) != maxArchive+1 {
		t.Fatalf("pruning exactly %d records left %d", maxArchive, len(ents)-1)
	}
}
