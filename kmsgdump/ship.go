package kmsgdump

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Disposition is what becomes of a saved record once every line of it is
// in vmware.log.
type Disposition string

// Dispositions.
const (
	// Archive copies the record's files into the state directory's
	// archive/ (durably) and then removes them from the source, which for
	// pstore frees the backend's space (EFI variables, reserved RAM) for
	// the next crash.
	Archive Disposition = "archive"
	// Remove removes the files.
	Remove Disposition = "remove"
	// Keep leaves the files; the state file remembers them as shipped.
	Keep Disposition = "keep"
)

// ParseDisposition parses archive, remove or keep.
func ParseDisposition(s string) (Disposition, error) {
	switch d := Disposition(s); d {
	case Archive, Remove, Keep:
		return d, nil
	}
	return "", fmt.Errorf("kmsgdump: unknown disposition %q (want archive, remove or keep)", s)
}

// maxArchive bounds the archive directory: the oldest files beyond it are
// removed.
const maxArchive = 100

// shipSaved ships every saved record not yet shipped, oldest first, then
// disposes of it. It returns how many records it shipped.
func (d *Dumper) shipSaved(ctx context.Context) (int, error) {
	if err := d.settle(ctx); err != nil {
		return 0, err
	}
	var recs []*SavedRecord
	if d.cfg.PstoreDir != "" {
		r, err := ScanPstore(d.cfg.PstoreDir)
		if err != nil {
			return 0, err
		}
		recs = append(recs, r...)
	}
	if d.cfg.CrashDir != "" {
		r, err := ScanCrash(d.cfg.CrashDir)
		if err != nil {
			return 0, err
		}
		recs = append(recs, r...)
	}
	sortRecords(recs)

	store := d.store
	store.NoteBoot(d.cfg.Boot)
	if err := store.Save(); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	shipped := 0
	for _, rec := range recs {
		seen[rec.Key] = true
		var done *ShippedRecord
		store.View(func(st *State) { done = st.Shipped[rec.Key] })
		if done == nil {
			if err := d.shipRecord(ctx, rec); err != nil {
				return shipped, err
			}
			shipped++
			done = &ShippedRecord{Name: rec.Name, Files: rec.Files, Lines: len(rec.Lines), Shipped: time.Now().UTC()}
			store.Update(func(st *State) { st.Shipped[rec.Key] = done })
			// Durable before any file is removed: a crash from here on
			// finds the record shipped and only finishes its disposal.
			if err := store.Save(); err != nil {
				return shipped, err
			}
		}
		after := d.after(rec)
		if !done.Disposed || (done.How == string(Keep) && after != Keep) {
			if err := d.dispose(rec); err != nil {
				return shipped, err
			}
			store.Update(func(st *State) {
				st.Shipped[rec.Key].Disposed = true
				st.Shipped[rec.Key].How = string(after)
			})
			if err := store.Save(); err != nil {
				return shipped, err
			}
		}
	}
	// Forget records whose files are gone.
	pruned := false
	store.Update(func(st *State) {
		for k, r := range st.Shipped {
			if !seen[k] && r.Disposed {
				delete(st.Shipped, k)
				pruned = true
			}
		}
	})
	if pruned {
		return shipped, store.Save()
	}
	return shipped, nil
}

// recordLines returns every vmware.log line of a saved record in order:
// the header, the notes, the record's lines and the footer.
func (d *Dumper) recordLines(rec *SavedRecord) [][]byte {
	lines := AppendLogLines(nil, []byte(d.recordHeader(rec)))
	for _, n := range rec.Notes {
		lines = AppendLogLines(lines, []byte("kmsgdump: note: "+n))
	}
	lines = append(lines, rec.Lines...)
	return AppendLogLines(lines, fmt.Appendf(nil, "kmsgdump: end %s record %s (%d lines)", rec.Kind, rec.Name, len(rec.Lines)))
}

// shipRecord sends a record's lines (header and footer included) from
// where a previous run stopped, journaling each (see Store): progress
// counts a line as soon as the host has it.
func (d *Dumper) shipRecord(ctx context.Context, rec *SavedRecord) error {
	store := d.store
	lines := d.recordLines(rec)
	total := uint64(len(lines))
	var next uint64 // lines the host has
	if key, n := store.Progress(); key == rec.Key {
		next = min(n, total)
	}
	if next == total {
		return nil // shipped in full before a crash; only the state was missing
	}
	if unsure := d.unsure == (inflight{"saved:" + rec.Key, next}); next > 0 || unsure {
		d.log().Info("resuming an interrupted record", "record", rec.Name, "line", next+1, "of", total)
		msg := fmt.Sprintf("kmsgdump: resume %s record %s at line %d of %d (the previous run was interrupted)", rec.Kind, rec.Name, next+1, total)
		if unsure {
			msg += fmt.Sprintf("; line %d may appear twice: it was being sent, and the host could not be asked whether it logged it", next+1)
		}
		if err := d.note(ctx, msg); err != nil {
			return err
		}
	}
	for ; next < total; next++ {
		n := next
		fl := &flight{store: store, what: "saved:" + rec.Key, n: n, arrived: func() error { return store.SetProgress(rec.Key, n+1) }}
		if err := d.sendLine(ctx, lines[n], fl); err != nil {
			return err
		}
	}
	d.log().Info("shipped a saved kernel log", "record", rec.Name, "lines", len(rec.Lines))
	return nil
}

// note sends kmsgdump's own remark, which no counter counts and which is
// not journaled: a note lost or repeated in a kill is harmless, and the
// inflight block keeps naming a line that a restart must still settle.
func (d *Dumper) note(ctx context.Context, text string) error {
	for _, l := range AppendLogLines(nil, []byte(text)) {
		if err := d.sendLine(ctx, l, nil); err != nil {
			return err
		}
	}
	return nil
}

// sendLine delivers one line; a line the host refuses is logged and
// skipped (retrying cannot change a refusal).
func (d *Dumper) sendLine(ctx context.Context, text []byte, fl Flight) error {
	err := d.cfg.Shipper.Log(ctx, text, fl)
	if errors.Is(err, ErrRefused) {
		d.log().Warn("host refused a log line; skipping it", "err", err)
		return nil
	}
	return err
}

// noneInflight is the inflight entry of a line no counter counts.
const noneInflight = "none"

// flight journals one line in the store's inflight block (a Flight): what
// and n name the line, arrived counts it.
type flight struct {
	store   *Store
	what    string
	n       uint64
	arrived func() error
}

func (f *flight) Sending(token string) error { return f.store.SetInflight(f.what, f.n, token) }

func (f *flight) Arrived() error {
	if f.arrived == nil {
		return nil
	}
	return f.arrived()
}

func (f *flight) Unsent() error { return f.store.SetInflight(noneInflight, 0, "") }

// inflight names a journaled line.
type inflight struct {
	what string
	n    uint64
}

// settle runs once, before anything is shipped: it finds the line an
// earlier run was sending when it was killed, asks the VMX whether that
// line arrived (Shipper.Settle), and if it did, counts it in progress or
// the cursor, so that it is not sent again. A line that cannot be settled
// is sent again, with a note that it may appear twice; it stays marked so
// until it is sent, even across further kills. The earlier run's channels
// are closed either way.
func (d *Dumper) settle(ctx context.Context) error {
	if d.settled {
		return nil
	}
	d.settled = true
	what, n, token := d.store.Inflight()
	if last := d.store.Channel(); last != "" && last != token {
		d.cfg.Shipper.Settle(ctx, last) // only to close it
	}
	if what == "" || what == noneInflight {
		d.cfg.Shipper.Settle(ctx, token) // only to close it
		return nil
	}
	// Is the line still uncounted?
	var count func() error
	if key, ok := strings.CutPrefix(what, "saved:"); ok {
		pk, pn := d.store.Progress()
		if pk != key {
			pn = 0
		}
		if pn == n {
			count = func() error { return d.store.SetProgress(key, n+1) }
		}
	} else if boot, ok := strings.CutPrefix(what, "kmsg:"); ok {
		cb, cs := d.store.Cursor()
		if cb != boot {
			cs = 0
		}
		if cs <= n {
			count = func() error { return d.store.SetCursor(boot, n+1) }
		}
	}
	arrived, known := d.cfg.Shipper.Settle(ctx, token)
	switch {
	case count == nil:
	case arrived:
		d.log().Info("the line in flight when the previous run ended had reached the host", "line", what, "n", n)
		if err := count(); err != nil {
			return err
		}
	case known:
		d.log().Info("the line in flight when the previous run ended had not reached the host; sending it again", "line", what, "n", n)
	default:
		d.log().Warn("cannot tell whether the line in flight when the previous run ended reached the host; sending it again", "line", what, "n", n)
		d.unsure = inflight{what, n}
		return d.store.SetInflight(what, n, "") // still unsure after another kill
	}
	return d.store.SetInflight(noneInflight, 0, "")
}

// recordHeader names the record, its time and the boot it came from.
func (d *Dumper) recordHeader(rec *SavedRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kmsgdump: begin %s record %s", rec.Kind, rec.Name)
	var what []string
	if rec.Backend != "" {
		what = append(what, "backend "+rec.Backend)
	}
	if rec.Dump.Reason != "" {
		what = append(what, fmt.Sprintf("%s#%d", rec.Dump.Reason, rec.Dump.Count))
	}
	if len(rec.Parts) > 1 {
		ps := make([]string, len(rec.Parts))
		for i, p := range rec.Parts {
			ps[i] = fmt.Sprint(p)
		}
		what = append(what, "parts "+strings.Join(ps, ",")+" joined")
	}
	if rec.Compressed {
		what = append(what, "compressed")
	}
	if len(what) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(what, ", "))
	}
	if rec.Time.IsZero() {
		b.WriteString(", written at an unknown time")
	} else {
		fmt.Fprintf(&b, ", written %s", rec.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, ", from %s", d.describeBoot(rec.Time))
	if rec.Kernel != "" {
		fmt.Fprintf(&b, ", kernel %s", rec.Kernel)
	}
	fmt.Fprintf(&b, ", %d lines", len(rec.Lines))
	return b.String()
}

// describeBoot names the boot during which wall-clock time t fell.
func (d *Dumper) describeBoot(t time.Time) string {
	cur := d.cfg.Boot
	switch {
	case t.IsZero():
		return "an unknown boot"
	case !cur.Start.IsZero() && !t.Before(cur.Start):
		return fmt.Sprintf("this boot %s", cur.ID)
	}
	if b, ok := d.store.BootAt(t); ok && b.ID != cur.ID {
		return fmt.Sprintf("boot %s (started %s)", b.ID, b.Start.UTC().Format(time.RFC3339))
	}
	if cur.Start.IsZero() {
		return "an earlier boot"
	}
	return fmt.Sprintf("a boot before this one (this boot %s started %s)", cur.ID, cur.Start.UTC().Format(time.RFC3339))
}

// dispose archives, removes or keeps a shipped record's files. It is
// idempotent: files already gone are skipped.
func (d *Dumper) dispose(rec *SavedRecord) error {
	after := d.after(rec)
	switch after {
	case Keep:
		return nil
	case Archive:
		dir, err := d.store.dir.subdir("archive")
		if err != nil {
			return fmt.Errorf("kmsgdump: archive: %w", err)
		}
		defer dir.close()
		for _, f := range rec.Files {
			b, err := readSavedRecordFile(rec.Kind, f)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
				continue
			}
			if err != nil {
				return fmt.Errorf("kmsgdump: archive: %w", err)
			}
			name := filepath.Base(f)
			if rec.Kind == "kdump" {
				name = filepath.Base(filepath.Dir(f)) + "-" + name
			}
			stamp := rec.Time.UTC().Format("20060102T150405Z")
			if err := dir.writeFile(stamp+"-"+name, b, 0o600); err != nil {
				return fmt.Errorf("kmsgdump: archive: %w", err)
			}
		}
		pruneArchive(dir)
	}
	for _, f := range rec.Files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kmsgdump: remove shipped record: %w", err)
		}
	}
	d.log().Info("disposed of a shipped record", "record", rec.Name, "how", string(after))
	return nil
}

// after returns the configured disposition of a record.
func (d *Dumper) after(rec *SavedRecord) Disposition {
	after := d.cfg.PstoreAfter
	if rec.Kind == "kdump" {
		after = d.cfg.CrashAfter
	}
	if after == "" {
		return Keep
	}
	return after
}

// pruneArchive keeps the newest maxArchive files (names start with the
// record's time, so name order is age order).
func pruneArchive(dir *secureDir) {
	all, err := dir.names()
	if err != nil {
		return
	}
	var names []string
	for _, n := range all {
		if !strings.HasPrefix(n, ".") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for len(names) > maxArchive {
		dir.remove(names[0])
		names = names[1:]
	}
}
