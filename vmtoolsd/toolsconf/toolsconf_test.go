package toolsconf

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

var testSchema = Schema{
	"powerops": {"poweroff-script": Path, "poweron-script": Path},
	"timeSync": {"disable-all": Bool, "step-threshold": Seconds},
}

func TestParse(t *testing.T) {
	in := "\xef\xbb\xbf# comment\n; also comment\n[powerops]\npoweroff-script = \"my script.sh\"\npoweron-script=\n" +
		"[timeSync]\r\ndisable-all=true\r\nname[de]=ignored\nesc=a\\sb\\tc\\\\d\\q\n" +
		"[broken\nkey=lost\nnoequals\n[powerops]\npoweroff-script=later\n"
	f, problems := Parse([]byte(in))
	if v, _ := f.Lookup("powerops", "poweroff-script"); v != "later" {
		t.Errorf("duplicate key: later value should win, got %q", v)
	}
	if v, ok := f.Lookup("powerops", "poweron-script"); !ok || v != "" {
		t.Errorf("empty value = %q, %v", v, ok)
	}
	if !f.Bool("timeSync", "disable-all", false) {
		t.Error("CRLF line not read")
	}
	if v, _ := f.Lookup("timeSync", "esc"); v != "a b\tc\\d\\q" {
		t.Errorf("escapes: %q", v)
	}
	if _, ok := f.Lookup("timeSync", "name[de]"); ok {
		t.Error("localized key kept")
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	want := []string{
		`line 9: [timeSync] esc: unknown escape \q (kept as is)`,
		`line 10: malformed group header "[broken"`,
		`line 11: key: key outside any [group]`,
		`line 12: not a key=value line: "noequals"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSchemaCheckAndAccessors(t *testing.T) {
	f, _ := Parse([]byte("[timeSync]\ndisable-all=maybe\nstep-threshold=-3\ntypo=1\n[timesync]\nx=1\n[guestinfo]\npoll-interval=30\n"))
	var got []string
	for _, p := range testSchema.Check(f) {
		got = append(got, p.String())
	}
	want := []string{
		`[timeSync] disable-all: "maybe" is not a boolean (true or false) (the default is used)`,
		`[timeSync] step-threshold: "-3" is not a number of seconds (the default is used)`,
		`[timeSync] typo: unknown key (ignored)`,
		`[timesync] group names are case-sensitive; did you mean [timeSync]? (ignored)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if f.Bool("timeSync", "disable-all", true) != true || f.Seconds("timeSync", "step-threshold", time.Minute) != time.Minute {
		t.Error("bad values must read as defaults")
	}
	if f.Int("guestinfo", "poll-interval", 0) != 30 || f.String("nope", "x", "d") != "d" {
		t.Error("accessors")
	}
	var nilFile *File
	if nilFile.Bool("a", "b", true) != true || len(nilFile.Groups()) != 0 {
		t.Error("nil file must read as empty")
	}
}

// logRecorder is a slog handler that keeps messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) handler() slog.Handler {
	return slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.msgs = append(r.msgs, string(bytes.TrimSpace(p)))
		return len(p), nil
	}), nil)
}

func (r *logRecorder) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWatcherReloads drives the inotify watcher through the edits people
// and tools make: create, rewrite in place, editor-style rename over,
// remove. A problem is warned on every load of a content that has it
// (not again for events that leave the content as it was).
func TestWatcherReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "vmware-tools") // does not exist yet
	path := filepath.Join(dir, "tools.conf")
	rec := &logRecorder{}
	changes := make(chan *File, 16)
	w := &Watcher{Path: path, Schema: testSchema, Logger: slog.New(rec.handler()), OnChange: func(f *File) { changes <- f }}
	if len(w.Load().Groups()) != 0 {
		t.Fatal("missing file must be empty")
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitFor := func(what string, ok func(*File) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case f := <-changes:
				if ok(f) {
					return
				}
			case <-deadline:
				t.Fatalf("no reload showing %s", what)
			}
		}
	}
	// Once the watcher has armed (on the nearest existing ancestor),
	// create the directory and the file.
	waitArmed(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, []byte("[timeSync]\ndisable-all=true\ntypo=1\n"), 0o644)
	waitFor("created file", func(f *File) bool { return f.Bool("timeSync", "disable-all", false) })

	os.WriteFile(path, []byte("[timeSync]\ndisable-all=false\ntypo=1\n"), 0o644)
	waitFor("in-place rewrite", func(f *File) bool { return !f.Bool("timeSync", "disable-all", true) })

	tmp := path + ".swp"
	os.WriteFile(tmp, []byte("[timeSync]\ndisable-all=true\ntypo=1\n"), 0o644)
	os.Rename(tmp, path)
	waitFor("rename over", func(f *File) bool { return f.Bool("timeSync", "disable-all", false) })

	os.Remove(path)
	waitFor("removal", func(f *File) bool { return len(f.Groups()) == 0 })

	if n := rec.count("typo: unknown key"); n != 3 {
		t.Errorf("unknown key warned %d times, want once per content (3)", n)
	}
	testutil.WaitFor(t, 10*time.Second, "Current to follow", func() bool { return len(w.Current().Groups()) == 0 })
}

func TestWatcherRunStops(t *testing.T) {
	w := &Watcher{Path: filepath.Join(t.TempDir(), "tools.conf")}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitArmed(t)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// waitArmed waits until this process has an inotify instance with a
// watch on it (the kernel lists each watch as an "inotify wd:" line in the
// fd's fdinfo): the moment a Watcher is watching. Tests in this package
// run one Watcher at a time.
func waitArmed(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "the watcher to arm inotify", func() bool {
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, e := range fds {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:inotify" {
				continue
			}
			info, _ := os.ReadFile("/proc/self/fdinfo/" + e.Name())
			if strings.Contains(string(info), "inotify wd:") {
				return true
			}
		}
		return false
	})
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/tools.conf"); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Add([]byte("[powerops]\npoweroff-script=x\n"))
	f.Add([]byte("[a]\nb=\\s\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, _ := Parse(data)
		testSchema.Check(file)
		for _, g := range file.Groups() {
			for _, k := range file.Keys(g) {
				if strings.ContainsAny(k, "=\n") {
					t.Fatalf("key %q", k)
				}
			}
		}
	})
}
