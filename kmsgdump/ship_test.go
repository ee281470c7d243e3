package kmsgdump

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// TestShipSavedInterrupted stops the shipper at every third line of the
// fixture in turn (the request fails and the run is stopped, as by
// SIGTERM) and checks that the next run ships every line exactly once,
// saying where it resumed, and not claiming a line may appear twice: the
// stopped run knew the line had not reached the host.
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
		// Only the resume lines are extra; the rest is exact.
		got, notes := withoutNotes(h.got())
		if diff := kmsgtest.CheckShipped(got, recs); diff != "" {
			t.Fatalf("stop at line %d: %s\nshipped:\n%s", stopAt, diff, strings.Join(h.got(), "\n"))
		}
		if len(notes) > 0 {
			resumed++
			if len(notes) != 1 || !strings.HasSuffix(notes[0], "(the previous run was interrupted)") {
				t.Errorf("stop at %d: notes %q", stopAt, notes)
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

// shipKilled runs ShipSaved on its own goroutine, which the host's kill
// hook may end at any moment with runtime.Goexit: nothing after that
// moment runs, as when the process is killed.
func shipKilled(ctx context.Context, d *Dumper) (finished bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := d.ShipSaved(ctx); err != nil {
			panic(err)
		}
		finished = true
	}()
	<-done
	return finished
}

// TestShipSavedKilled kills the shipper at chosen lines and moments: as
// the line goes out ("send": the host never has it), right after the host
// logged it ("sent": the sender never hears back) and as the reply is
// collected ("receive"), then restarts it. Over a resumable channel the
// restart asks the host about the line in flight and every line is
// shipped exactly once, and the killed runs' channels are closed. Over
// one that cannot be resumed, a kill after the host logged the line
// repeats that one line, right after a resume note that says it may.
func TestShipSavedKilled(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		for _, at := range []string{"send", "sent", "receive"} {
			t.Run(fmt.Sprintf("resumable=%v/%s", resumable, at), func(t *testing.T) {
				root := t.TempDir()
				pstore, crash, recs := kmsgtest.WritePstore(t, root)
				cfg := Config{StateDir: filepath.Join(root, "state"), PstoreDir: pstore, CrashDir: crash, PstoreAfter: Remove, CrashAfter: Remove}
				h := &fakeHost{resumable: resumable}
				// Kill at host lines 0 (a header), 5 and 6 (in a row: the
				// second kill lands on the restart's first line), around
				// the end of the first record and at 40.
				kills := 0
				end := len(recs[0].Lines) + 4
				if end <= 6 || end >= 40 {
					t.Fatalf("fixture's first record has %d lines", len(recs[0].Lines))
				}
				for _, stopAt := range []int{0, 5, 6, end, end + 1, 40} {
					h.kill = func(when string, n int, line string) {
						if when == at && n == stopAt {
							kills++
							runtime.Goexit()
						}
					}
					d := newDumper(t, h, cfg)
					if shipKilled(t.Context(), d) {
						t.Fatalf("not killed at line %d", stopAt)
					}
					d.Close()
				}
				h.kill = nil
				d := newDumper(t, h, cfg)
				if !shipKilled(t.Context(), d) {
					t.Fatal("final run did not finish")
				}
				d.cfg.Shipper.Close()
				got, notes := withoutNotes(h.got())
				if resumable || at == "send" {
					if diff := kmsgtest.CheckShipped(got, recs); diff != "" {
						t.Fatalf("%s\nshipped:\n%s", diff, strings.Join(h.got(), "\n"))
					}
				} else {
					// A kill can repeat the line in flight, and only
					// right after the notes of the restarts that followed.
					all := h.got()
					var kept []string
					repeats := 0
					for i := 0; i < len(all); i++ {
						if !strings.HasPrefix(all[i], "kmsgdump: resume ") {
							kept = append(kept, all[i])
							continue
						}
						j := i
						for j < len(all) && strings.HasPrefix(all[j], "kmsgdump: resume ") {
							j++
						}
						if i > 0 && j < len(all) && all[j] == all[i-1] {
							repeats++
							j++
						}
						i = j - 1
					}
					if diff := kmsgtest.CheckShipped(kept, recs); diff != "" || repeats == 0 || repeats > kills {
						t.Fatalf("%d repeats after %d kills; %s\nshipped:\n%s", repeats, kills, diff, strings.Join(all, "\n"))
					}
				}
				// A resume note for each kill mid-record (the kill at the
				// footer resumes nothing: the header of the next record
				// follows); "may appear twice" only where the host could
				// not be asked.
				twice := 0
				for _, n := range notes {
					if strings.Contains(n, "may appear twice") {
						twice++
					}
				}
				wantTwice := 0
				if !resumable {
					wantTwice = len(notes)
				}
				if len(notes) < kills-2 || twice != wantTwice {
					t.Errorf("%d kills, notes:\n%s", kills, strings.Join(notes, "\n"))
				}
				if resumable && h.open() != 0 {
					t.Errorf("%d channels left open", h.open())
				}
			})
		}
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
	c, err := openCounterPath(path)
	if err != nil {
		t.Fatal(err)
	}
	if k, n, tok := c.get(); k != "" || n != 0 || tok != "" {
		t.Fatalf("fresh counter %q %d %q", k, n, tok)
	}
	for i := range uint64(300) {
		if err := c.set("key", i, ""); err != nil {
			t.Fatal(err)
		}
	}
	c.close()
	c, _ = openCounterPath(path)
	if k, n, tok := c.get(); k != "key" || n != 299 || tok != "" {
		t.Fatalf("reopened %q %d %q", k, n, tok)
	}
	tok := "bd1-49435052-0001-deadbeef-00c0ffee"
	if err := c.set("saved:p0123456789abcdef0123456789abcdef", 1<<40, tok); err != nil {
		t.Fatal(err)
	}
	c.close()
	c, _ = openCounterPath(path)
	if k, n, got := c.get(); k != "saved:p0123456789abcdef0123456789abcdef" || n != 1<<40 || got != tok {
		t.Fatalf("reopened %q %d %q", k, n, got)
	}
	for _, bad := range [][2]string{{"", ""}, {"a b", ""}, {"-", ""}, {"k", "a\nb"}, {"k", "-"}, {strings.Repeat("k", 81), ""}} {
		if err := c.set(bad[0], 1, bad[1]); err == nil {
			t.Errorf("set(%q, %q) accepted", bad[0], bad[1])
		}
	}
	c.close()
	// A torn block fails its checksum and counts as absent.
	b, _ := os.ReadFile(path)
	b[10] ^= 1
	os.WriteFile(path, b, 0o600)
	c, _ = openCounterPath(path)
	if k, n, tok := c.get(); k != "" || n != 0 || tok != "" {
		t.Fatalf("corrupt counter read as %q %d %q", k, n, tok)
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

// FuzzParseCounter: a state block of any content reads as a valid
// (key, number, token) or as absent, and what set writes reads back.
func FuzzParseCounter(f *testing.F) {
	f.Add([]byte("v2 saved:p00 12 bd1-49435052-0001-deadbeef-00c0ffee 00000000\n"))
	f.Add([]byte("v2 none 0 - 00000000\n"))
	f.Add([]byte("v1 key 3 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		key, n, token, ok := parseCounter(b)
		if !ok {
			return
		}
		c, err := openCounterPath(filepath.Join(t.TempDir(), "c"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if err := c.set(key, n, token); err != nil {
			return // parsed, but not writable (say, a key over 80 bytes)
		}
		c2, _ := openCounterPath(c.path)
		defer c2.close()
		if k, m, tok := c2.get(); k != key || m != n || tok != token {
			t.Fatalf("%q %d %q read back as %q %d %q", key, n, token, k, m, tok)
		}
	})
}
