package kmsgdump

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
)

// TestResumeNoteNamesTheLine: the resume note in vmware.log and the
// dumper's own log name the first line the restart sends, counted from
// 1; after a kill the host could not be asked about, the note names the
// same line as the one that may appear twice.
func TestResumeNoteNamesTheLine(t *testing.T) {
	const stopAt = 5 // host line, 0-based: lines 0-4 of the first record arrived
	for _, unsure := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsure=%v", unsure), func(t *testing.T) {
			root := t.TempDir()
			pstore, crash, recs := kmsgtest.WritePstore(t, root)
			cfg := Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove}
			h := &fakeHost{}
			if unsure {
				// The host logs line 5, and the run dies before it hears so.
				h.kill = func(at string, n int, _ string) {
					if at == "sent" && n == stopAt {
						runtime.Goexit()
					}
				}
				if shipKilled(t.Context(), newDumper(t, h, cfg)) {
					t.Fatal("not killed")
				}
				h.kill = nil
			} else {
				ctx, cancel := context.WithCancel(t.Context())
				h.before = func(n int, _ string) bool {
					if n == stopAt {
						cancel()
						return false
					}
					return true
				}
				if _, err := newDumper(t, h, cfg).ShipSaved(ctx); err == nil {
					t.Fatal("stopped run: no error")
				}
				cancel()
				h.before = nil
			}
			var log testutil.SyncBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
			if _, err := newDumper(t, h, cfg).ShipSaved(t.Context()); err != nil {
				t.Fatal(err)
			}
			_, notes := withoutNotes(h.got())
			total := len(recs[0].Lines) + 2 // header and footer; the fixture's first record has no notes
			want := fmt.Sprintf(" at line %d of %d (the previous run was interrupted)", stopAt+1, total)
			if unsure {
				want += fmt.Sprintf("; line %d may appear twice:", stopAt+1)
			}
			if len(notes) != 1 || !strings.Contains(notes[0], want) {
				t.Errorf("notes %q, want one with %q", notes, want)
			}
			if !strings.Contains(log.String(), fmt.Sprintf(`"resuming an interrupted record" record=%s line=%d of=%d`, recs[0].Name, stopAt+1, total)) {
				t.Errorf("log:\n%s", log.String())
			}
		})
	}
}

// TestRecordHeaderBare: a record with nothing to say about its backend,
// dump reason, parts or compression has no parenthesis after its name.
func TestRecordHeaderBare(t *testing.T) {
	d := newDumper(t, &fakeHost{}, Config{StateDir: filepath.Join(t.TempDir(), "state")})
	rec := &SavedRecord{Kind: "kdump", Name: "/var/crash/x/dmesg.txt", Time: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Lines: [][]byte{[]byte("a")}}
	got := d.recordHeader(rec)
	if want := "kmsgdump: begin kdump record /var/crash/x/dmesg.txt, written 2026-01-05T00:00:00Z, from "; !strings.HasPrefix(got, want) || strings.Contains(got, "()") {
		t.Errorf("header %q, want %q... without an empty parenthesis", got, want)
	}
	rec.Compressed = true
	if got := d.recordHeader(rec); !strings.Contains(got, " (compressed), written") {
		t.Errorf("compressed: %q", got)
	}
}
