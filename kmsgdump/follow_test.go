package kmsgdump

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

func appendRecords(t *testing.T, path string, recs ...kmsg.Record) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range recs {
		if _, err := f.Write(kmsg.Encode(r)); err != nil {
			t.Fatal(err)
		}
	}
}

// blockedReading reports whether some goroutine is parked in the runtime
// poller inside (*Source).Read: a reader waiting for the kernel log.
func blockedReading() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[IO wait") && strings.Contains(g, "kmsgdump.(*Source).Read") {
			return true
		}
	}
	return false
}

func TestSourceStreams(t *testing.T) {
	dir := t.TempDir()
	recs := []kmsg.Record{rec(1, 4, "one"), rec(2, 6, "two"), rec(3, 3, "three")}
	recs[1].Dict = []kmsg.KV{{Key: "SUBSYSTEM", Value: "pci"}, {Key: "DEVICE", Value: "+pci:0000:00:01.0"}}
	var all []byte
	for _, r := range recs {
		all = append(all, kmsg.Encode(r)...)
	}
	all = append(all, "garbage line\n"...)
	all = append(all, kmsg.Encode(rec(4, 4, "four"))...)

	check := func(name string, src *Source) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		for _, want := range []uint64{1, 2, 3, 4} {
			r, err := src.Read(ctx)
			if err != nil {
				t.Fatalf("%s: read %d: %v", name, want, err)
			}
			if r.Seq != want {
				t.Fatalf("%s: got seq %d, want %d", name, r.Seq, want)
			}
			if want == 2 && (len(r.Dict) != 2 || r.Dict[1].Value != "+pci:0000:00:01.0") {
				t.Fatalf("%s: dictionary %v", name, r.Dict)
			}
		}
	}

	// A regular file, read from the start, written in pieces.
	file := filepath.Join(dir, "kmsg")
	os.WriteFile(file, all[:17], 0o644)
	src, err := OpenSource(file, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	src.Poll = 5 * time.Millisecond
	go func() {
		// The delay is what is tested: the reader meets the end of the
		// file inside the first record and must poll until the rest comes.
		time.Sleep(30 * time.Millisecond)
		f, _ := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
		f.Write(all[17:])
		f.Close()
	}()
	check("file", src)
	src.Close()

	// From the end: only what is written later.
	src, _ = OpenSource(file, true, nil)
	src.Poll = 5 * time.Millisecond
	appendRecords(t, file, rec(5, 4, "five"))
	if r, err := src.Read(t.Context()); err != nil || r.Seq != 5 {
		t.Fatalf("at end: %v %v", r.Seq, err)
	}
	src.Close()

	// A FIFO, written in odd-sized chunks by a writer that comes and goes.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err = OpenSource(fifo, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < len(all); i += 7 {
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			w.Write(all[i:min(i+7, len(all))])
			w.Close()
		}
	}()
	check("fifo", src)
	// Close unblocks a reader waiting on the FIFO.
	done := make(chan error, 1)
	go func() { _, err := src.Read(context.Background()); done <- err }()
	testutil.WaitFor(t, 10*time.Second, "the reader to block on the FIFO", blockedReading)
	src.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read after close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

type runner struct {
	d      *Dumper
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

func startRun(t *testing.T, h *fakeHost, cfg Config) *runner {
	t.Helper()
	d := newDumper(t, h, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	r := &runner{d: d, cancel: cancel}
	r.wg.Go(func() { r.err = d.Run(ctx) })
	t.Cleanup(r.stop)
	return r
}

func (r *runner) stop() {
	r.cancel()
	r.wg.Wait()
}

func TestRunFollowResumes(t *testing.T) {
	dir := t.TempDir()
	kfile := filepath.Join(dir, "kmsg")
	appendRecords(t, kfile, rec(1, 4, "old warning before start"), rec(2, 4, "another"))
	h := &fakeHost{}
	ready := make(chan int, 1)
	cfg := Config{StateDir: filepath.Join(dir, "state"), Follow: true, KmsgPath: kfile, Level: kmsg.LevelWarning,
		Ready: func(n int, err error) {
			select {
			case ready <- n:
			default:
			}
		}}
	r := startRun(t, h, cfg)
	<-ready
	appendRecords(t, kfile, rec(3, 6, "info"), rec(4, 4, "warn four"), rec(5, 2, "crit five"))
	testutil.WaitFor(t, 10*time.Second, "two lines", func() bool { return len(h.got()) == 2 })
	r.stop()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := strings.Join(h.got(), "|"); got != "<4>[    4.000000] warn four|<2>[    5.000000] crit five" {
		t.Fatalf("first run shipped %q", got)
	}
	// Written while stopped: shipped after a restart in the same boot.
	appendRecords(t, kfile, rec(6, 4, "warn six"), rec(7, 6, "info"))
	r = startRun(t, h, cfg)
	appendRecords(t, kfile, rec(8, 3, "err eight"))
	testutil.WaitFor(t, 10*time.Second, "the restart's lines", func() bool { return len(h.got()) == 4 })
	r.stop()
	if got := strings.Join(h.got()[2:], "|"); got != "<4>[    6.000000] warn six|<3>[    8.000000] err eight" {
		t.Fatalf("restart shipped %q", got)
	}
	// A new boot starts at the end of the log.
	appendRecords(t, kfile, rec(9, 4, "from the old boot"))
	cfg.Boot = Boot{ID: "another-boot", Start: testBoot.Start.Add(time.Hour)}
	r = startRun(t, h, cfg)
	// Run publishes its queue only once the kernel log is open at its end.
	testutil.WaitFor(t, 10*time.Second, "the reader at the end", func() bool { return r.d.queue.Load() != nil })
	appendRecords(t, kfile, rec(1, 4, "new boot"))
	testutil.WaitFor(t, 10*time.Second, "the new boot's line", func() bool { return len(h.got()) == 5 })
	r.stop()
	if got := h.got()[4]; got != "<4>[    1.000000] new boot" {
		t.Fatalf("new boot shipped %q", got)
	}
}

func TestRunFollowHostUnreachable(t *testing.T) {
	dir := t.TempDir()
	kfile := filepath.Join(dir, "kmsg")
	os.WriteFile(kfile, nil, 0o644)
	h := &fakeHost{}
	h.setDown(true)
	cfg := Config{StateDir: filepath.Join(dir, "state"), Follow: true, KmsgPath: kfile, Level: kmsg.LevelWarning, QueueLines: 4}
	r := startRun(t, h, cfg)
	// Run publishes its queue only once the kernel log is open at its end.
	testutil.WaitFor(t, 10*time.Second, "the reader", func() bool { return r.d.queue.Load() != nil })
	appendRecords(t, kfile, rec(1, 4, "w1"))
	testutil.WaitFor(t, 10*time.Second, "the shipper to hold w1", func() bool { return h.attempts() > 0 })
	for i := 2; i <= 10; i++ {
		appendRecords(t, kfile, rec(uint64(i), 4, fmt.Sprintf("w%d", i)))
	}
	// One line is in the shipper's hands, four wait, five are dropped.
	testutil.WaitFor(t, 10*time.Second, "the queue to overflow", func() bool { return r.d.queue.Load().Dropped() == 5 })
	h.setDown(false)
	appendRecords(t, kfile, rec(11, 4, "w11"))
	testutil.WaitFor(t, 10*time.Second, "the backlog", func() bool { return len(h.got()) == 7 })
	r.stop()
	var got []string
	for _, l := range h.got() {
		if i := strings.Index(l, "] "); i >= 0 {
			l = l[i+2:]
		}
		got = append(got, l)
	}
	want := "w1|w2|w3|w4|w5|kmsgdump: 5 lines dropped: the host was unreachable and the queue (4 lines) was full|w11"
	if strings.Join(got, "|") != want {
		t.Fatalf("shipped %q", got)
	}
}

// overrunDevice plays /dev/kmsg across a ring overrun: one record per
// read, and EPIPE for the read whose record was overwritten.
type overrunDevice struct {
	reads []any // []byte or error
}

func (d *overrunDevice) Read(p []byte) (int, error) {
	if len(d.reads) == 0 {
		return 0, io.EOF
	}
	r := d.reads[0]
	d.reads = d.reads[1:]
	if err, ok := r.(error); ok {
		return 0, err
	}
	return copy(p, r.([]byte)), nil
}

func (d *overrunDevice) Close() error { return nil }

func TestSourceOverrun(t *testing.T) {
	dev := &overrunDevice{reads: []any{
		kmsg.Encode(rec(10, 4, "before")),
		syscall.EPIPE, // records 11..14 were overwritten
		kmsg.Encode(rec(15, 4, "after")),
	}}
	src := &Source{Path: "/dev/kmsg", f: dev, device: true, buf: make([]byte, kmsg.MaxRecord)}
	f := &Filter{Level: kmsg.LevelWarning}
	var out []Item
	for range 2 {
		r, err := src.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.Push(r)...)
	}
	got := strings.Join(texts(out), "|")
	want := "<4>[   10.000000] before|kmsgdump: 4 kernel log records lost before record 15 (the kernel's ring buffer was overrun)|<4>[   15.000000] after"
	if got != want || f.Lost() != 4 {
		t.Fatalf("got %q (lost %d)", got, f.Lost())
	}
}

// TestRunFollowKilled kills the live shipper with a kernel record's line
// in flight and restarts it in the same boot. Over a resumable channel
// every record is shipped exactly once whatever the moment of the kill;
// over one that cannot be resumed, a kill after the host logged the line
// repeats it, after a note saying it may.
func TestRunFollowKilled(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		for _, at := range []string{"send", "sent", "receive"} {
			t.Run(fmt.Sprintf("resumable=%v/%s", resumable, at), func(t *testing.T) {
				dir := t.TempDir()
				kfile := filepath.Join(dir, "kmsg")
				os.WriteFile(kfile, nil, 0o644)
				var want []string
				var recs []kmsg.Record
				for i := uint64(1); i <= 12; i++ {
					recs = append(recs, rec(i, 4, fmt.Sprintf("warning %d", i)))
					want = append(want, fmt.Sprintf("<4>[%5d.000000] warning %d", i, i))
				}
				h := &fakeHost{resumable: resumable}
				killed := make(chan struct{})
				h.kill = func(when string, n int, line string) {
					if when == at && n == 5 {
						close(killed)
						runtime.Goexit()
					}
				}
				ready := make(chan struct{}, 1)
				cfg := Config{StateDir: filepath.Join(dir, "state"), Follow: true, KmsgPath: kfile, Level: kmsg.LevelWarning,
					Ready: func(int, error) { ready <- struct{}{} }}
				r := startRun(t, h, cfg)
				<-ready
				// Run publishes its queue only once the kernel log is open at its end.
				testutil.WaitFor(t, 10*time.Second, "the reader", func() bool { return r.d.queue.Load() != nil })
				appendRecords(t, kfile, recs[:8]...)
				<-killed
				r.stop() // the reader; the shipper is dead
				r.d.Close()
				h.kill = nil
				r = startRun(t, h, cfg)
				<-ready
				appendRecords(t, kfile, recs[8:]...)
				testutil.WaitFor(t, 10*time.Second, "every record", func() bool {
					got, _ := withoutNotes(h.got())
					return len(got) >= len(want)
				})
				r.stop()
				got, notes := withoutNotes(h.got())
				if resumable || at == "send" {
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("shipped:\n%s", strings.Join(h.got(), "\n"))
					}
				} else if dup := append(slices.Clone(want[:6]), want[5:]...); strings.Join(got, "\n") != strings.Join(dup, "\n") {
					t.Fatalf("shipped:\n%s\nwant record 6 twice", strings.Join(h.got(), "\n"))
				}
				if resumable != (len(notes) == 0) || !resumable && (len(notes) != 1 || !strings.Contains(notes[0], "record 6; its lines may appear twice")) {
					t.Errorf("notes %q", notes)
				}
				if resumable && h.open() > 1 {
					t.Errorf("%d channels open, want the running shipper's", h.open())
				}
			})
		}
	}
}
