package toolsconf

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

func writeConf(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReloadSyntaxErrorKeepsOld: a reload that does not parse applies
// nothing of the new file (the poweroff-script does not disappear), and
// says so every time the mistake is made.
func TestReloadSyntaxErrorKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tools.conf")
	good := "[powerops]\npoweroff-script=/sbin/good\n[timeSync]\ndisable-all=true\n"
	writeConf(t, path, good)
	rec := &logRecorder{}
	w := &Watcher{Path: path, Schema: testSchema, Logger: slog.New(rec.handler())}
	w.Load()
	bad := "[powerops\npoweroff-script=/sbin/bad\n[timeSync]\ndisable-all=false\n"
	for i := 1; i <= 2; i++ {
		writeConf(t, path, bad)
		f := w.Load()
		if v, _ := f.Lookup("powerops", "poweroff-script"); v != "/sbin/good" || !f.Bool("timeSync", "disable-all", false) {
			t.Fatalf("after a broken reload: poweroff-script %q, disable-all %v; want the old file", v, f.Bool("timeSync", "disable-all", false))
		}
		if n := rec.count("does not parse"); n != i {
			t.Fatalf("broken reload %d: %d error lines, want %d", i, n, i)
		}
		if n := rec.count("keeping the previous configuration"); n != i {
			t.Fatalf("broken reload %d: says %d times it keeps the old file", i, n)
		}
		writeConf(t, path, good+"# fixed\n")
		w.Load()
	}
	// Broken from the start: defaults, and the error.
	rec2 := &logRecorder{}
	w2 := &Watcher{Path: path, Logger: slog.New(rec2.handler())}
	writeConf(t, path, bad)
	if f := w2.Load(); len(f.Groups()) != 0 || rec2.count("does not parse") != 1 || rec2.count("using the defaults") != 1 {
		t.Fatalf("broken at start: groups %v, log %q", f.Groups(), rec2.msgs)
	}
}

// TestMissingRequired: vmtoolsd -c naming a file that is not there warns;
// the default path missing is quiet.
func TestMissingRequired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.conf")
	for _, req := range []bool{true, false} {
		rec := &logRecorder{}
		w := &Watcher{Path: path, Required: req, Logger: slog.New(rec.handler())}
		w.Load()
		if n := rec.count("does not exist"); n != map[bool]int{true: 1, false: 0}[req] {
			t.Errorf("Required %v: %d warnings (%q)", req, n, rec.msgs)
		}
	}
}

// TestUntrustedConfRefused: tools.conf that a user could change is
// refused with one log line and the configuration in force stays.
func TestUntrustedConfRefused(t *testing.T) {
	testutil.RequireRoot(t)
	attacks := map[string]func(t *testing.T, dir, path string){
		"world-writable": func(t *testing.T, dir, path string) { os.Chmod(path, 0o666) },
		"group-writable": func(t *testing.T, dir, path string) { os.Chmod(path, 0o664) },
		"user-owned":     func(t *testing.T, dir, path string) { os.Chown(path, nobody, nobody) },
		"user-owned dir": func(t *testing.T, dir, path string) { os.Chown(dir, nobody, nobody) },
		"world-writable dir": func(t *testing.T, dir, path string) {
			os.Chmod(dir, 0o777)
		},
		"symlink to a user's file": func(t *testing.T, dir, path string) {
			user := filepath.Join(t.TempDir(), "u")
			os.Mkdir(user, 0o755)
			os.Chown(user, nobody, nobody)
			evil := filepath.Join(user, "tools.conf")
			b, _ := os.ReadFile(path)
			os.WriteFile(evil, b, 0o644)
			os.Chown(evil, nobody, nobody)
			os.Remove(path)
			os.Symlink(evil, path)
		},
	}
	for name, attack := range attacks {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "etc")
			os.Mkdir(dir, 0o755)
			path := filepath.Join(dir, "tools.conf")
			writeConf(t, path, "[powerops]\nsuspend-script=/sbin/good\n")
			rec := &logRecorder{}
			w := &Watcher{Path: path, Logger: slog.New(rec.handler())}
			w.Load()
			writeConf(t, path, "[powerops]\nsuspend-script=/tmp/evil\n")
			attack(t, dir, path)
			f := w.Load()
			if v, _ := f.Lookup("powerops", "suspend-script"); v != "/sbin/good" {
				t.Fatalf("suspend-script %q after the attack, want the old /sbin/good", v)
			}
			if n := rec.count("tools.conf refused"); n != 1 {
				t.Fatalf("%d refusal lines, want 1: %q", n, rec.msgs)
			}
			// At start-up: the defaults.
			rec2 := &logRecorder{}
			w2 := &Watcher{Path: path, Logger: slog.New(rec2.handler())}
			if _, ok := w2.Load().Lookup("powerops", "suspend-script"); ok || rec2.count("refused") != 1 {
				t.Fatalf("untrusted at start-up applied, or not logged once: %q", rec2.msgs)
			}
		})
	}
}

func TestTrusted(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, nil, 0o755)
	if err := Trusted(p); err != nil {
		t.Fatalf("own 0755 file in a 0700 dir under sticky /tmp: %v", err)
	}
	os.Chmod(p, 0o775)
	if err := Trusted(p); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("0775: %v", err)
	}
	os.Chmod(p, 0o755)
	// Another uid than the file's owner (and not root) is refused.
	me := uint32(os.Geteuid())
	if me != 0 {
		if err := trustedFor(p, me+1); err == nil {
			t.Fatal("a file of uid", me, "trusted for uid", me+1)
		}
	}
	loop := filepath.Join(dir, "loop")
	os.Symlink(loop, loop)
	if err := Trusted(loop); err == nil {
		t.Fatal("a symlink loop trusted")
	}
}
