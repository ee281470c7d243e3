package kmsgdump

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
)

var testBoot = Boot{ID: "11111111-2222-3333-4444-555555555555", Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}

func newDumper(t *testing.T, h *fakeHost, cfg Config) *Dumper {
	t.Helper()
	cfg.Shipper = h.shipper()
	if cfg.StateDir == "" {
		t.Fatal("no state dir")
	}
	if cfg.Boot.ID == "" {
		cfg.Boot = testBoot
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestShipSavedFixture(t *testing.T) {
	root := t.TempDir()
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	originals := map[string][]byte{}
	for _, r := range recs {
		for _, f := range r.Files {
			b, _ := os.ReadFile(f)
			originals[f] = b
		}
	}
	state := filepath.Join(root, "state")
	h := &fakeHost{}
	cfg := Config{StateDir: state, PstoreDir: pstore, CrashDir: crash, PstoreAfter: Archive, CrashAfter: Keep}
	d := newDumper(t, h, cfg)
	n, err := d.ShipSaved(t.Context())
	if err != nil || n != len(recs) {
		t.Fatalf("ShipSaved = %d, %v; want %d records", n, err, len(recs))
	}
	if diff := kmsgtest.CheckShipped(h.got(), recs); diff != "" {
		t.Fatalf("%s\nshipped:\n%s", diff, strings.Join(h.got(), "\n"))
	}
	if h.opens != 1 {
		t.Errorf("%d channels opened, want one persistent channel", h.opens)
	}
	// pstore records archived byte for byte and removed; the console
	// record and the kdump file stay.
	left, _ := os.ReadDir(pstore)
	if len(left) != 1 || left[0].Name() != "console-ramoops-0" {
		t.Errorf("pstore left with %v", left)
	}
	archived, _ := os.ReadDir(filepath.Join(state, "archive"))
	if len(archived) != 6 {
		t.Errorf("archive holds %d files, want 6", len(archived))
	}
	for _, r := range recs {
		for _, f := range r.Files {
			if r.Kind == "kdump" {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("kdump file not kept: %v", err)
				}
				continue
			}
			name := r.Time.UTC().Format("20060102T150405Z") + "-" + filepath.Base(f)
			b, err := os.ReadFile(filepath.Join(state, "archive", name))
			if err != nil || !bytes.Equal(b, originals[f]) {
				t.Errorf("archive of %s: %v", f, err)
			}
		}
	}
	// Headers name the boot: the records predate this boot.
	if !strings.Contains(h.got()[0], "from a boot before this one (this boot "+testBoot.ID) {
		t.Errorf("header %q does not name the boot", h.got()[0])
	}

	// A second run ships nothing: the pstore records are gone, the kdump
	// record is remembered.
	before := len(h.got())
	d2 := newDumper(t, h, cfg)
	if n, err := d2.ShipSaved(t.Context()); err != nil || n != 0 || len(h.got()) != before {
		t.Fatalf("second run: %d records, %v, %d new lines", n, err, len(h.got())-before)
	}
	// Once kdump's file is gone, the state forgets it.
	os.RemoveAll(crash)
	d3 := newDumper(t, h, cfg)
	if _, err := d3.ShipSaved(t.Context()); err != nil {
		t.Fatal(err)
	}
	var st State
	b, _ := os.ReadFile(filepath.Join(state, "state.json"))
	if err := json.Unmarshal(b, &st); err != nil || len(st.Shipped) != 0 || len(st.Boots) != 1 {
		t.Errorf("state after the sources are gone: %s", b)
	}
}

// TestShipSavedInterrupted stops the shipper at every line of the
// fixture in turn (the request never reaches the host, as when the
// process is killed mid-send) and checks that the next run ships every
// line exactly once.
func TestShipSavedInterrupted(t *testing.T) {
	probe := &fakeHost{}
	{
		root := t.TempDir()
		pstore, crash, _ := kmsgtest.WritePstore(t, root)
		d := newDumper(t, probe, Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove})
		if _, err := d.ShipSaved(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	total := len(probe.got())
	resumed := 0
	for stopAt := 0; stopAt < total; stopAt += 3 {
		root := t.TempDir()
		pstore, crash, recs := kmsgtest.WritePstore(t, root)
		cfg := Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove}
		h := &fakeHost{}
		ctx, cancel := context.WithCancel(t.Context())
		h.before = func(n int, line string) bool {
			if n == stopAt {
				cancel()
				return false
			}
			return true
		}
		d := newDumper(t, h, cfg)
		if _, err := d.ShipSaved(ctx); err == nil {
			t.Fatalf("stop at %d: no error", stopAt)
		}
		d.Close()
		h.before = nil
		d = newDumper(t, h, cfg)
		if _, err := d.ShipSaved(t.Context()); err != nil {
			t.Fatalf("stop at %d: rerun: %v", stopAt, err)
		}
		// Drop the resume lines (and, if the stop fell on a begin line,
		// the begin line it repeats); the rest must be exact.
		var got []string
		for _, l := range h.got() {
			if strings.HasPrefix(l, "kmsgdump: resume ") {
				continue
			}
			if len(got) > 0 && got[len(got)-1] == l && strings.HasPrefix(l, "kmsgdump: begin ") {
				continue
			}
			got = append(got, l)
		}
		if diff := kmsgtest.CheckShipped(got, recs); diff != "" {
			t.Fatalf("stop at line %d: %s\nshipped:\n%s", stopAt, diff, strings.Join(h.got(), "\n"))
		}
		resumes := slices.IndexFunc(h.got(), func(l string) bool { return strings.HasPrefix(l, "kmsgdump: resume ") })
		if resumes >= 0 {
			resumed++
			if !strings.Contains(h.got()[resumes], "(the previous run was interrupted;") {
				t.Errorf("resume line %q", h.got()[resumes])
			}
		}
		if left, _ := os.ReadDir(pstore); len(left) != 1 {
			t.Errorf("stop at %d: pstore left with %d files", stopAt, len(left))
		}
	}
	if resumed < total/3/2 {
		t.Errorf("only %d of the interrupted runs resumed mid-record", resumed)
	}
}

// TestShipSavedFinishesDisposal: a crash after the state says "shipped"
// but before the files were removed only finishes the removal.
func TestShipSavedFinishesDisposal(t *testing.T) {
	root := t.TempDir()
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	state := filepath.Join(root, "state")
	cfg := Config{StateDir: state, PstoreDir: pstore, CrashDir: crash, PstoreAfter: Keep, CrashAfter: Keep}
	h := &fakeHost{}
	if _, err := newDumper(t, h, cfg).ShipSaved(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Make it look as if the disposal never happened, then ask for removal.
	b, _ := os.ReadFile(filepath.Join(state, "state.json"))
	os.WriteFile(filepath.Join(state, "state.json"), bytes.ReplaceAll(b, []byte(`"disposed": true`), []byte(`"disposed": false`)), 0o600)
	n := len(h.got())
	cfg.PstoreAfter, cfg.CrashAfter = Remove, Remove
	if shipped, err := newDumper(t, h, cfg).ShipSaved(t.Context()); err != nil || shipped != 0 || len(h.got()) != n {
		t.Fatalf("rerun shipped %d records (%v), %d lines", shipped, err, len(h.got())-n)
	}
	for _, r := range recs {
		for _, f := range r.Files {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("%s not removed: %v", f, err)
			}
		}
	}
}

func TestShipSavedNamesKnownBoot(t *testing.T) {
	root := t.TempDir()
	pstore, _, _ := kmsgtest.WritePstore(t, root)
	state := filepath.Join(root, "state")
	h := &fakeHost{}
	// An earlier run recorded the boot the records come from.
	old := Boot{ID: "aaaaaaaa-0000-0000-0000-000000000000", Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st, err := OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	st.NoteBoot(old)
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	d := newDumper(t, h, Config{StateDir: state, PstoreDir: pstore, PstoreAfter: Keep})
	if _, err := d.ShipSaved(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.got()[0], "from boot "+old.ID+" (started 2026-01-01T00:00:00Z)") {
		t.Errorf("header %q", h.got()[0])
	}
}

func TestUndecodableCompressedRecordIsKept(t *testing.T) {
	root := t.TempDir()
	pstore := filepath.Join(root, "pstore")
	os.MkdirAll(pstore, 0o755)
	junk := []byte("\x04\x22\x4d\x18 this is lz4, not deflate")
	os.WriteFile(filepath.Join(pstore, "dmesg-ramoops-0.enc.z"), junk, 0o440)
	h := &fakeHost{}
	state := filepath.Join(root, "state")
	d := newDumper(t, h, Config{StateDir: state, PstoreDir: pstore, PstoreAfter: Archive})
	if _, err := d.ShipSaved(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := h.got()
	if len(got) != 3 || !strings.Contains(got[1], "cannot decode") || !strings.Contains(got[1], "kept in the archive") {
		t.Fatalf("shipped %q", got)
	}
	ents, _ := os.ReadDir(filepath.Join(state, "archive"))
	if len(ents) != 1 {
		t.Fatalf("archive: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "archive", ents[0].Name())); !bytes.Equal(b, junk) {
		t.Error("archived bytes differ")
	}
}

// TestDecompressSamples decodes the testdata records: raw deflate with the
// ECC notice ramoops appends, and a zlib stream.
func TestDecompressSamples(t *testing.T) {
	plain, _ := os.ReadFile("testdata/dmesg-ramoops-0")
	for name, want := range map[string]string{
		"dmesg-efi-176812380001001.enc.z": string(plain) + "ECC: No errors detected\n",
		"dmesg-ramoops-1.enc.z":           strings.Replace(string(plain), "Oops#1", "Panic#2", 1),
	} {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decompress(raw)
		if err != nil || string(got) != want {
			t.Errorf("Decompress(%s) = %q, %v", name, got, err)
		}
	}
	if _, err := Decompress([]byte("not compressed at all")); err == nil {
		t.Error("plain text decompressed")
	}
}

func TestCounterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	c, err := openCounter(path)
	if err != nil {
		t.Fatal(err)
	}
	if k, n := c.get(); k != "" || n != 0 {
		t.Fatalf("fresh counter %q %d", k, n)
	}
	for i := range uint64(300) {
		if err := c.set("key", i); err != nil {
			t.Fatal(err)
		}
	}
	c.close()
	c, _ = openCounter(path)
	if k, n := c.get(); k != "key" || n != 299 {
		t.Fatalf("reopened %q %d", k, n)
	}
	c.close()
	// A torn block fails its checksum and counts as absent.
	b, _ := os.ReadFile(path)
	b[10] ^= 1
	os.WriteFile(path, b, 0o600)
	c, _ = openCounter(path)
	if k, n := c.get(); k != "" || n != 0 {
		t.Fatalf("corrupt counter read as %q %d", k, n)
	}
	c.close()
}

func FuzzDecodePstore(f *testing.F) {
	f.Add([]byte("Panic#1 Part1\n<0>[ 1.0] Kernel panic\n"), false)
	f.Add([]byte("x\x9c\xcbH\xcd\xc9\xc9\x07\x00\x06,\x02\x15"), true)
	f.Add([]byte("\xcbH\xcd\xc9\xc9\x07\x00"), true)
	seeds, _ := filepath.Glob("testdata/dmesg-*")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.HasSuffix(s, ".enc.z"))
	}
	f.Fuzz(func(t *testing.T, raw []byte, compressed bool) {
		files := []*pstoreFile{
			decodePstoreFile("/x/a", "dmesg-efi-1", "efi", 171234567802001, compressed, time.Unix(1, 0), raw),
			decodePstoreFile("/x/b", "dmesg-efi-2", "efi", 171234567801001, false, time.Unix(1, 0), raw),
		}
		for _, r := range groupPstore(files) {
			for _, l := range r.Lines {
				if len(l) > MaxLine || len(l) == 0 {
					t.Fatalf("line of %d bytes", len(l))
				}
			}
		}
	})
}
