package kmsgdump

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSavedRecordsNoFollow plants symlinks (and a FIFO) where pstore and
// kdump records are looked for, pointing at a file only root may read:
// nothing of it is read or shipped, and a real record beside them still
// is.
func TestSavedRecordsNoFollow(t *testing.T) {
	root := t.TempDir()
	secret := filepath.Join(root, "secret")
	os.WriteFile(secret, []byte("Linux version 6.1 SECRET shadow line\n"), 0o600)
	secretDir := filepath.Join(root, "secretdir")
	os.Mkdir(secretDir, 0o700)
	os.WriteFile(filepath.Join(secretDir, "vmcore-dmesg.txt"), []byte("SECRET in a linked directory\n"), 0o600)

	crash := filepath.Join(root, "crash")
	os.MkdirAll(filepath.Join(crash, "real"), 0o755)
	os.WriteFile(filepath.Join(crash, "real", "vmcore-dmesg.txt"), []byte("[    1.000000] Linux version 6.1 real dump\n"), 0o644)
	os.MkdirAll(filepath.Join(crash, "linkfile"), 0o755)
	must(t, os.Symlink(secret, filepath.Join(crash, "linkfile", "vmcore-dmesg.txt")))
	must(t, os.Symlink(secretDir, filepath.Join(crash, "linkdir")))
	os.MkdirAll(filepath.Join(crash, "fifo"), 0o755)
	must(t, syscall.Mkfifo(filepath.Join(crash, "fifo", "dmesg.202601010000"), 0o644))

	recs, err := ScanCrash(crash)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Name != filepath.Join(crash, "real", "vmcore-dmesg.txt") {
		var names []string
		for _, r := range recs {
			names = append(names, r.Name)
		}
		t.Fatalf("crash records %q, want only the real one", names)
	}
	for _, r := range recs {
		for _, l := range r.Lines {
			if strings.Contains(string(l), "SECRET") {
				t.Fatalf("a linked file was read: %q", l)
			}
		}
	}

	// A record replaced by a symlink after it was listed (the archive
	// re-reads it; a pstore listing skips links by their type, a link
	// swapped in after it must not be followed either).
	pstore := filepath.Join(root, "pstore")
	os.Mkdir(pstore, 0o755)
	must(t, os.Symlink(secret, filepath.Join(pstore, "dmesg-ramoops-0")))
	if recs, err := ScanPstore(pstore); err != nil || len(recs) != 0 {
		t.Fatalf("pstore with a planted link: %d records, %v", len(recs), err)
	}
	for _, c := range []struct{ kind, path string }{
		{"pstore", filepath.Join(pstore, "dmesg-ramoops-0")},
		{"kdump", filepath.Join(crash, "linkfile", "vmcore-dmesg.txt")},
		{"kdump", filepath.Join(crash, "linkdir", "vmcore-dmesg.txt")},
		{"kdump", filepath.Join(crash, "fifo", "dmesg.202601010000")},
	} {
		b, err := readSavedRecordFile(c.kind, c.path)
		if !errors.Is(err, errNotRegular) {
			t.Errorf("%s: read %q, %v; want it refused", c.path, b, err)
		}
	}
	if b, err := readSavedRecordFile("kdump", filepath.Join(crash, "real", "vmcore-dmesg.txt")); err != nil || !strings.Contains(string(b), "real dump") {
		t.Errorf("the real record: %q %v", b, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
