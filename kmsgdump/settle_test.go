package kmsgdump

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
)

// TestResumeNoteFailureStops: when the resume note of an interrupted
// record cannot be sent (the run is stopped while sending it), the run
// ends with the error and sends nothing after it; the next run still
// ships every line exactly once.
func TestResumeNoteFailureStops(t *testing.T) {
	root := t.TempDir()
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	cfg := Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove}
	h := &fakeHost{}
	stop := func(match func(n int, line string) bool) (context.Context, func()) {
		ctx, cancel := context.WithCancel(t.Context())
		h.before = func(n int, line string) bool {
			if match(n, line) {
				cancel()
				return false
			}
			return true
		}
		return ctx, cancel
	}
	// First run: stopped at host line 5, in the first record.
	ctx, cancel := stop(func(n int, _ string) bool { return n == 5 })
	d := newDumper(t, h, cfg)
	if _, err := d.ShipSaved(ctx); err == nil {
		t.Fatal("first run: no error")
	}
	cancel()
	d.Close()
	// Second run: stopped as it sends the resume note.
	before := len(h.got())
	ctx, cancel = stop(func(_ int, line string) bool { return strings.HasPrefix(line, "kmsgdump: resume ") })
	d = newDumper(t, h, cfg)
	if _, err := d.ShipSaved(ctx); err == nil {
		t.Fatal("second run: the failed resume note gave no error")
	}
	cancel()
	d.Close()
	if got := h.got()[before:]; len(got) != 0 {
		t.Fatalf("second run sent %d lines after its resume note failed: %q", len(got), got)
	}
	h.before = nil
	d = newDumper(t, h, cfg)
	if _, err := d.ShipSaved(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, notes := withoutNotes(h.got())
	if diff := kmsgtest.CheckShipped(got, recs); diff != "" || len(notes) != 1 {
		t.Fatalf("%d notes; %s\nshipped:\n%s", len(notes), diff, strings.Join(h.got(), "\n"))
	}
}

// TestSettleClearsInflight: a run killed after the host logged the very
// last line (the footer), before it heard back, leaves that line in the
// inflight block; the restart asks the host, counts the line, and clears
// the block, though no line follows that would overwrite it.
func TestSettleClearsInflight(t *testing.T) {
	probe := &fakeHost{}
	{
		root := t.TempDir()
		pstore, crash, _ := kmsgtest.WritePstore(t, root)
		d := newDumper(t, probe, Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove})
		if _, err := d.ShipSaved(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	last := len(probe.got()) - 1
	root := t.TempDir()
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	cfg := Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove}
	h := &fakeHost{resumable: true}
	killed := false
	h.kill = func(at string, n int, _ string) {
		if at == "sent" && n == last {
			killed = true
			runtime.Goexit()
		}
	}
	d := newDumper(t, h, cfg)
	if shipKilled(t.Context(), d) || !killed {
		t.Fatalf("not killed at the last line (%d)", last)
	}
	if what, n, _ := d.store.Inflight(); !strings.HasPrefix(what, "saved:") {
		t.Fatalf("killed run left inflight %q %d, want the footer", what, n)
	}
	d.Close()
	h.kill = nil
	d = newDumper(t, h, cfg)
	if !shipKilled(t.Context(), d) {
		t.Fatal("restart did not finish")
	}
	d.cfg.Shipper.Close()
	if diff := kmsgtest.CheckShipped(h.got(), recs); diff != "" {
		t.Fatalf("%s\nshipped:\n%s", diff, strings.Join(h.got(), "\n"))
	}
	d.Close()
	st, err := OpenStore(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if what, n, token := st.Inflight(); what != noneInflight {
		t.Errorf("after the restart settled it, inflight is %q %d %q, want %q", what, n, token, noneInflight)
	}
}
