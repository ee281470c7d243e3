package kmsgdump

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// openCounterPath opens the counter file at path, its directory checked
// as the store's is.
func openCounterPath(path string) (*counterFile, error) {
	f, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	d := &secureDir{path: filepath.Dir(path), f: f}
	defer d.close()
	return openCounter(d, filepath.Base(path))
}

// nobody is the throwaway uid the attack directories are given.
const nobody = 65534

// TestStateDirRefused: a state directory anyone else could change is
// refused, with an error that says what to do.
func TestStateDirRefused(t *testing.T) {
	cases := map[string]func(dir string){
		"mode 0777": func(dir string) { os.Chmod(dir, 0o777) },
		"mode 0755": func(dir string) { os.Chmod(dir, 0o755) },
		"symlink": func(dir string) {
			real := dir + ".real"
			os.Rename(dir, real)
			os.Symlink(real, dir)
		},
	}
	if os.Geteuid() == 0 {
		cases["owned by a user"] = func(dir string) { os.Chown(dir, nobody, nobody) }
	}
	for name, attack := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			os.Mkdir(dir, 0o700)
			attack(dir)
			if s, err := OpenStore(dir); err == nil {
				s.Close()
				t.Fatal("accepted")
			} else if !strings.Contains(err.Error(), "state directory") {
				t.Fatalf("error %v", err)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "new", "state")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatalf("a new state directory: %v", err)
	}
	s.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("created %v", fi.Mode())
	}
}

// TestStateFilesNoFollow: symlinks planted in the state directory (as in
// one that was once 0777) for progress, inflight, cursor, channel,
// state.json and archive are never written through.
func TestStateFilesNoFollow(t *testing.T) {
	testutil.RequireRoot(t) // only root's writes through a link matter; the victim is root's file
	for _, name := range []string{"progress", "inflight", "cursor", "channel", "state.json", "archive"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			os.Mkdir(dir, 0o700)
			victim := filepath.Join(t.TempDir(), "victim")
			os.WriteFile(victim, []byte("root's file\n"), 0o644)
			os.Symlink(victim, filepath.Join(dir, name))
			s, err := OpenStore(dir)
			if err == nil {
				err = s.Save()
				if name == "archive" {
					_, err = s.dir.subdir("archive")
				}
				s.Close()
			}
			if b, _ := os.ReadFile(victim); string(b) != "root's file\n" {
				t.Fatalf("the victim was overwritten: %q", b)
			}
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Fatalf("planted %s: %v, want a refusal naming the symlink", name, err)
			}
		})
	}
}
