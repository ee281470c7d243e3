package kmsgdump

import (
	"bytes"
	"fmt"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

// Trigger is a pattern that marks an incident: a record whose message
// contains it is shipped whatever its level, together with the records
// around it.
type Trigger struct {
	Name    string
	Pattern string
}

// DefaultTriggers returns the kernel's incident reports (a new slice each
// call).
func DefaultTriggers() []Trigger {
	return []Trigger{
		{"oops", "Oops"},
		{"bug", "BUG:"},
		{"bug", "kernel BUG at"},
		{"panic", "Kernel panic"},
		{"panic", "kernel panic"},
		{"hung task", "hung task"},
		{"hung task", "hung_task"},
		{"hung task", " blocked for more than "}, // "INFO: task X:123 blocked for more than 120 seconds."
		{"oom", "Out of memory"},
		{"oom", "invoked oom-killer"},
		{"warning", "WARNING: CPU"},
		{"lockup", "soft lockup"},
		{"lockup", "hard LOCKUP"},
		{"rcu stall", "rcu_sched detected stalls"},
		{"rcu stall", "rcu_preempt detected stalls"},
		{"gpf", "general protection fault"},
		{"fault", "Unable to handle kernel"},
	}
}

// Item is a unit of shipping: the vmware.log lines of one kernel record, or
// a note from kmsgdump itself.
type Item struct {
	// Seq is the record's sequence number; 0 for a note.
	Seq uint64
	// Lines are the vmware.log line texts.
	Lines [][]byte
	// Incident is true for a trigger record and its context.
	Incident bool
}

// Filter decides which kernel records are shipped: those at Level or more
// severe, and for every record matching a trigger, the record itself, up
// to Before unshipped records before it and the After records following
// it. Records come out in sequence order; context before a trigger is
// taken from the records since the last shipped one, so vmware.log never
// goes back in time. It also joins continuation fragments and reports
// sequence gaps (ring overruns, records lost before a restart) as notes.
// A Filter is not safe for concurrent use.
type Filter struct {
	Level    int
	Triggers []Trigger
	Before   int
	After    int

	pending   []kmsg.Record // unshipped records since the last shipped one, at most Before
	afterLeft int
	lastSeq   uint64
	haveSeq   bool
	cont      *kmsg.Record // a 'c' record waiting for its '+' fragments
	contFirst uint64       // the sequence number of its first fragment
	lost      uint64
}

// Resume tells the filter that records up to seq were dealt with before,
// so a gap after it counts as lost.
func (f *Filter) Resume(seq uint64) {
	f.lastSeq, f.haveSeq = seq, true
}

// Lost returns how many records were lost in all.
func (f *Filter) Lost() uint64 { return f.lost }

// Push takes the next record and returns what to ship now. A record with
// the continue flag is held until its fragments arrive; Flush releases it.
func (f *Filter) Push(r kmsg.Record) []Item {
	var out []Item
	if r.Flag == kmsg.FlagFragment && f.cont != nil {
		f.cont.Message = append(f.cont.Message, r.Message...)
		f.cont.Seq = r.Seq
		f.noteSeq(r.Seq, &out)
		return out
	}
	out = append(out, f.Flush()...)
	f.noteSeq(r.Seq, &out)
	if r.Flag == kmsg.FlagContinue {
		c := r
		c.Message = bytes.Clone(r.Message)
		f.cont, f.contFirst = &c, r.Seq
		return out
	}
	return append(out, f.decide(r)...)
}

// Flush releases a held continuation record.
func (f *Filter) Flush() []Item {
	if f.cont == nil {
		return nil
	}
	r := *f.cont
	f.cont = nil
	return f.decide(r)
}

// Undecided returns the sequence number below which every record has been
// decided (shipped or passed over): the oldest held record's, or one past
// the last record seen. It is where a restart should resume.
func (f *Filter) Undecided() (seq uint64, ok bool) {
	if len(f.pending) > 0 {
		return f.pending[0].Seq, true
	}
	if f.cont != nil {
		return f.contFirst, true
	}
	if f.haveSeq {
		return f.lastSeq + 1, true
	}
	return 0, false
}

func (f *Filter) noteSeq(seq uint64, out *[]Item) {
	if f.haveSeq && seq > f.lastSeq+1 {
		n := seq - f.lastSeq - 1
		f.lost += n
		*out = append(*out, note(fmt.Sprintf("kmsgdump: %d kernel log records lost before record %d (the kernel's ring buffer was overrun)", n, seq)))
	}
	if !f.haveSeq || seq > f.lastSeq {
		f.lastSeq, f.haveSeq = seq, true
	}
}

func (f *Filter) decide(r kmsg.Record) []Item {
	if f.trigger(r.Message) {
		out := make([]Item, 0, len(f.pending)+1)
		for _, p := range f.pending {
			out = append(out, recordItem(p, true))
		}
		f.pending = f.pending[:0]
		f.afterLeft = f.After
		return append(out, recordItem(r, true))
	}
	if f.afterLeft > 0 {
		f.afterLeft--
		return []Item{recordItem(r, true)}
	}
	if r.Level <= f.Level {
		f.pending = f.pending[:0]
		return []Item{recordItem(r, false)}
	}
	if f.Before > 0 {
		if len(f.pending) == f.Before {
			copy(f.pending, f.pending[1:])
			f.pending = f.pending[:f.Before-1]
		}
		f.pending = append(f.pending, r)
	}
	return nil
}

func (f *Filter) trigger(msg []byte) bool {
	for _, t := range f.Triggers {
		if bytes.Contains(msg, []byte(t.Pattern)) {
			return true
		}
	}
	return false
}

// recordItem formats a record like the kernel's dumpers do:
// "<prival>[seconds.micros] message"; a message with newlines becomes
// several lines with the same prefix.
func recordItem(r kmsg.Record, incident bool) Item {
	prefix := kmsg.AppendPrefix(nil, r)
	it := Item{Seq: r.Seq, Incident: incident}
	for _, line := range bytes.Split(r.Message, []byte{'\n'}) {
		text := append(append([]byte(nil), prefix...), line...)
		it.Lines = AppendLogLines(it.Lines, text)
	}
	if len(it.Lines) == 0 {
		it.Lines = [][]byte{bytes.TrimSpace(prefix)}
	}
	return it
}

func note(text string) Item {
	return Item{Lines: AppendLogLines(nil, []byte(text))}
}

// Limiter is a token bucket over lines: Rate lines per second, bursts of
// up to Burst. Lines over the limit are counted, and the next line let
// through (or Summary, called when the bucket has refilled) reports them.
// Incident lines draw from a separate bucket of the same size, so a storm
// of warnings cannot hide an Oops.
type Limiter struct {
	Rate  float64
	Burst int
	Now   func() time.Time

	buckets [2]bucket
}

type bucket struct {
	tokens     float64
	last       time.Time
	started    bool
	suppressed int
}

// Allow passes it's lines through the limiter and returns what to ship:
// a summary of earlier suppressed lines first, when there were any.
func (l *Limiter) Allow(it Item) []Item {
	if l.Rate <= 0 {
		return []Item{it}
	}
	b := &l.buckets[0]
	if it.Incident {
		b = &l.buckets[1]
	}
	now := l.Now()
	l.refill(b, now)
	var out []Item
	kept := it
	kept.Lines = nil
	for _, line := range it.Lines {
		if b.tokens >= 1 {
			if b.suppressed > 0 {
				out = append(out, l.summary(b))
			}
			b.tokens--
			kept.Lines = append(kept.Lines, line)
		} else {
			b.suppressed++
		}
	}
	if len(kept.Lines) > 0 || it.Seq != 0 {
		out = append(out, kept) // an empty record item still carries its Seq
	}
	return out
}

// Summary returns the "N lines suppressed" notes due now: for each bucket
// that suppressed lines and has refilled a token since.
func (l *Limiter) Summary() []Item {
	var out []Item
	now := l.Now()
	for i := range l.buckets {
		b := &l.buckets[i]
		l.refill(b, now)
		if b.suppressed > 0 && b.tokens >= 1 {
			out = append(out, l.summary(b))
		}
	}
	return out
}

// Suppressing reports whether lines are being held back, i.e. whether a
// Summary will be due.
func (l *Limiter) Suppressing() bool {
	return l.buckets[0].suppressed > 0 || l.buckets[1].suppressed > 0
}

func (l *Limiter) summary(b *bucket) Item {
	n := b.suppressed
	b.suppressed = 0
	return note(fmt.Sprintf("kmsgdump: %d lines suppressed (rate limit %g lines/s, burst %d)", n, l.Rate, l.Burst))
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if !b.started {
		b.tokens, b.last, b.started = float64(l.Burst), now, true
		return
	}
	if now.After(b.last) {
		b.tokens = min(float64(l.Burst), b.tokens+now.Sub(b.last).Seconds()*l.Rate)
		b.last = now
	}
}
