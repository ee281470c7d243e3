package kmsgdump

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

func rec(seq uint64, level int, msg string) kmsg.Record {
	return kmsg.Record{Level: level, Seq: seq, Time: time.Duration(seq) * time.Second, Flag: '-', Message: []byte(msg)}
}

func texts(items []Item) []string {
	var out []string
	for _, it := range items {
		for _, l := range it.Lines {
			out = append(out, string(l))
		}
	}
	return out
}

func TestFilterLevelsAndTriggers(t *testing.T) {
	f := &Filter{Level: kmsg.LevelWarning, Triggers: DefaultTriggers(), Before: 2, After: 2}
	var out []Item
	push := func(r kmsg.Record) { out = append(out, f.Push(r)...) }
	push(rec(1, 6, "info one"))
	push(rec(2, 4, "a warning"))
	push(rec(3, 6, "info before 1"))
	push(rec(4, 7, "info before 2"))
	push(rec(5, 6, "info before 3"))
	push(rec(6, 6, "Out of memory: Killed process 123 (stress)")) // trigger at info level
	push(rec(7, 6, "after 1"))
	push(rec(8, 7, "after 2"))
	push(rec(9, 6, "not shipped"))
	push(rec(10, 3, "an error"))
	push(rec(11, 6, "INFO: task jbd2/sda1-8:211 blocked for more than 120 seconds."))
	want := []string{
		"<4>[    2.000000] a warning",
		"<7>[    4.000000] info before 2",
		"<6>[    5.000000] info before 3",
		"<6>[    6.000000] Out of memory: Killed process 123 (stress)",
		"<6>[    7.000000] after 1",
		"<7>[    8.000000] after 2",
		"<3>[   10.000000] an error",
		"<6>[   11.000000] INFO: task jbd2/sda1-8:211 blocked for more than 120 seconds.",
	}
	if got := texts(out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("shipped:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Records in sequence order, incidents marked.
	var last uint64
	for _, it := range out {
		if it.Seq <= last {
			t.Fatalf("out of order: %d after %d", it.Seq, last)
		}
		last = it.Seq
		if want := it.Seq >= 4 && it.Seq <= 8 || it.Seq == 11; it.Incident != want {
			t.Errorf("seq %d incident=%v", it.Seq, it.Incident)
		}
	}
	if seq, ok := f.Undecided(); !ok || seq != 12 {
		t.Errorf("Undecided = %d %v", seq, ok)
	}
	push(rec(12, 6, "after 1"))
	push(rec(13, 6, "after 2"))
	push(rec(14, 6, "held for context"))
	if seq, _ := f.Undecided(); seq != 14 {
		t.Errorf("Undecided with a held record = %d", seq)
	}
	for _, trig := range []string{"Oops: 0000 [#1] SMP", "BUG: unable to handle page fault", "Kernel panic - not syncing: x",
		"WARNING: CPU: 3 PID: 1 at x.c:1", "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!", "kernel BUG at mm/slub.c:123!"} {
		g := &Filter{Level: kmsg.LevelErr, Triggers: DefaultTriggers()}
		if len(g.Push(rec(1, 7, trig))) != 1 {
			t.Errorf("%q did not trigger", trig)
		}
	}
}

func TestFilterContinuationAndLoss(t *testing.T) {
	f := &Filter{Level: kmsg.LevelWarning, Triggers: DefaultTriggers()}
	f.Resume(9)
	var out []Item
	out = append(out, f.Push(rec(13, 4, "after a gap"))...)
	c := rec(14, 4, "CPU: 1 PID: 431 Comm: kworker")
	c.Flag = 'c'
	out = append(out, f.Push(c)...)
	frag := rec(15, 4, " Not tainted")
	frag.Flag = '+'
	out = append(out, f.Push(frag)...)
	if seq, _ := f.Undecided(); seq != 14 {
		t.Errorf("Undecided while joining = %d, want 14", seq)
	}
	out = append(out, f.Flush()...)
	got := texts(out)
	want := []string{
		"kmsgdump: 3 kernel log records lost before record 13 (the kernel's ring buffer was overrun)",
		"<4>[   13.000000] after a gap",
		"<4>[   14.000000] CPU: 1 PID: 431 Comm: kworker Not tainted",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s", strings.Join(got, "\n"))
	}
	if out[len(out)-1].Seq != 15 || f.Lost() != 3 {
		t.Errorf("joined seq %d, lost %d", out[len(out)-1].Seq, f.Lost())
	}
	// A multi-line message keeps its prefix on every line.
	m := texts(f.Push(rec(16, 3, "first\nsecond")))
	if strings.Join(m, "|") != "<3>[   16.000000] first|<3>[   16.000000] second" {
		t.Errorf("multi-line: %q", m)
	}
}

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Rate: 10, Burst: 5, Now: time.Now}
		var out []Item
		for i := range 20 {
			out = append(out, l.Allow(Item{Seq: uint64(i + 1), Lines: [][]byte{fmt.Appendf(nil, "line %d", i)}})...)
		}
		if got := texts(out); len(got) != 5 || got[4] != "line 4" {
			t.Fatalf("burst let through %q", got)
		}
		// Incidents have their own bucket.
		if got := texts(l.Allow(Item{Seq: 99, Incident: true, Lines: [][]byte{[]byte("Oops")}})); len(got) != 1 {
			t.Fatalf("incident suppressed: %q", got)
		}
		if !l.Suppressing() || len(l.Summary()) != 0 {
			t.Fatal("summary due before any refill")
		}
		time.Sleep(100 * time.Millisecond) // one token
		s := texts(l.Summary())
		if len(s) != 1 || s[0] != "kmsgdump: 15 lines suppressed (rate limit 10 lines/s, burst 5)" {
			t.Fatalf("summary %q", s)
		}
		if l.Suppressing() {
			t.Fatal("still suppressing after the summary")
		}
		time.Sleep(time.Second)
		if got := texts(l.Allow(Item{Seq: 100, Lines: [][]byte{[]byte("later")}})); len(got) != 1 {
			t.Fatalf("after refill: %q", got)
		}
		// A summary also rides in front of the next line let through.
		for range 10 {
			l.Allow(Item{Seq: 101, Lines: [][]byte{[]byte("x")}})
		}
		time.Sleep(200 * time.Millisecond)
		got := texts(l.Allow(Item{Seq: 102, Lines: [][]byte{[]byte("y")}}))
		if len(got) != 2 || !strings.Contains(got[0], "lines suppressed") || got[1] != "y" {
			t.Fatalf("summary before a line: %q", got)
		}
	})
}

func TestQueueDropsAndAnnounces(t *testing.T) {
	q := NewQueue(3, 1<<20)
	for i := 1; i <= 6; i++ {
		q.Push(Item{Seq: uint64(i), Lines: [][]byte{fmt.Appendf(nil, "l%d", i)}})
	}
	if q.Dropped() != 3 {
		t.Fatalf("dropped %d", q.Dropped())
	}
	var got []string
	for range 4 {
		it, _, ok, err := q.Pop(t.Context(), 0)
		if err != nil || !ok {
			t.Fatal(err)
		}
		got = append(got, texts([]Item{it})...)
	}
	want := "l1|l2|l3|kmsgdump: 3 lines dropped: the host was unreachable and the queue (3 lines) was full"
	if strings.Join(got, "|") != want {
		t.Fatalf("popped %q", got)
	}
	q.SetDecided(7)
	if _, d, ok, err := q.Pop(t.Context(), 0); err != nil || ok || d != 7 {
		t.Fatalf("empty pop: decided %d ok %v err %v", d, ok, err)
	}
}
