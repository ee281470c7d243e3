// Package vmxlog sends a daemon's warnings and errors to the VM's
// vmware.log, where the person debugging the VM looks first, without ever
// flooding it: a slog.Handler tees records at or above a level to a Sink,
// which sends them as "log" RPCIs over one persistent RPCI channel,
// de-duplicates repeats and rate-limits the rest.
//
// open-vm-tools' vmx logger opens a channel per message and forwards
// everything it is given, so a chatty guest floods vmware.log; this one
// holds one channel, drops nothing silently (it says how many lines it
// suppressed), and never blocks the caller: records go through a bounded
// queue that a single goroutine (Sink.Run) drains.
package vmxlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Sender sends one RPCI request; *rpc.Client is one.
type Sender interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
}

// Limits of the sink.
const (
	// MaxLine is VMTools_VmxLog's buffer: 4096 bytes including "log ".
	MaxLine = 4096
	// DefaultBurst lines may go out at once; then one per DefaultEvery.
	DefaultBurst = 10
	DefaultEvery = 6 * time.Second
	// DefaultDedupWindow: the same text again within it is counted, not
	// sent.
	DefaultDedupWindow = time.Minute
	queueLen           = 64
)

// Sink sends lines to vmware.log. Create it with NewSink; start Run.
type Sink struct {
	rpci   Sender
	prefix string
	now    func() time.Time
	burst  int
	every  time.Duration
	window time.Duration
	fail   *slog.Logger // where the sink's own failures go (never itself)

	queue chan string

	mu      sync.Mutex
	dropped int // lines lost to a full queue
}

// Options configure a Sink. Zero values mean the defaults.
type Options struct {
	// Prefix starts every line, e.g. "vmtoolsd: ".
	Prefix      string
	Burst       int
	Every       time.Duration
	DedupWindow time.Duration
	// Logger receives the sink's own send failures; it must not lead
	// back to this sink.
	Logger *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// NewSink returns a sink sending over rpci (give it its own *rpc.Client:
// one persistent channel dedicated to logging).
func NewSink(rpci Sender, o Options) *Sink {
	s := &Sink{rpci: rpci, prefix: o.Prefix, now: o.Now, burst: o.Burst, every: o.Every, window: o.DedupWindow, fail: o.Logger, queue: make(chan string, queueLen)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.burst <= 0 {
		s.burst = DefaultBurst
	}
	if s.every <= 0 {
		s.every = DefaultEvery
	}
	if s.window <= 0 {
		s.window = DefaultDedupWindow
	}
	if s.fail == nil {
		s.fail = slog.New(slog.DiscardHandler)
	}
	return s
}

// Log queues one line; it never blocks. A full queue drops the line and
// counts it.
func (s *Sink) Log(line string) {
	select {
	case s.queue <- line:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
	}
}

// Run sends queued lines until ctx ends.
func (s *Sink) Run(ctx context.Context) error {
	var (
		tokens     = float64(s.burst)
		lastRefill = s.now()
		last       string
		lastAt     time.Time
		repeats    int
		suppressed int // lines over the rate limit
	)
	flushRepeats := func() {
		if repeats > 0 {
			s.send(ctx, fmt.Sprintf("last message repeated %d times", repeats))
			repeats = 0
		}
	}
	var tick <-chan time.Time
	for {
		// A timer only while there is something to report later.
		var timer *time.Timer
		if repeats > 0 || suppressed > 0 {
			timer = time.NewTimer(s.every)
			tick = timer.C
		} else {
			tick = nil
		}
		var line string
		var have bool
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case line = <-s.queue:
			have = true
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		now := s.now()
		tokens = min(float64(s.burst), tokens+now.Sub(lastRefill).Seconds()/s.every.Seconds())
		lastRefill = now
		s.mu.Lock()
		dropped := s.dropped
		s.dropped = 0
		s.mu.Unlock()
		suppressed += dropped

		if !have {
			// Quiet period: report what was held back, within budget.
			if repeats > 0 && tokens >= 1 && now.Sub(lastAt) >= s.every {
				tokens--
				flushRepeats()
			}
			if suppressed > 0 && tokens >= 1 {
				tokens--
				s.send(ctx, fmt.Sprintf("%d log lines suppressed (rate limit)", suppressed))
				suppressed = 0
			}
			continue
		}
		if line == last && now.Sub(lastAt) < s.window {
			repeats++
			continue
		}
		if tokens < 1 {
			suppressed++
			continue
		}
		tokens--
		flushRepeats()
		s.send(ctx, line)
		last, lastAt = line, now
	}
}

// send writes one "log" RPCI, text + NUL as VMTools_VmxLog does, cut to
// MaxLine.
func (s *Sink) send(ctx context.Context, text string) {
	req := "log " + s.prefix + text
	if len(req) > MaxLine-1 {
		req = req[:MaxLine-1]
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.rpci.Call(ctx, []byte(req+"\x00")); err != nil && ctx.Err() == nil {
		s.fail.Debug("vmx log send failed", "err", err)
	}
}

// Handler is a slog.Handler that passes every record to Next and also
// sends those at or above Level to a Sink as one line:
// "LEVEL message key=value ...".
type Handler struct {
	next  slog.Handler
	sink  *Sink
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// NewHandler tees next: records at or above level (nil means Warn) also go
// to sink.
func NewHandler(next slog.Handler, sink *Sink, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelWarn
	}
	return &Handler{next: next, sink: sink, level: level}
}

// Enabled reports whether either destination wants the level.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() || h.next.Enabled(ctx, l)
}

// Handle passes r on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if r.Level >= h.level.Level() {
		h.sink.Log(h.format(r))
	}
	return err
}

func (h *Handler) format(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	write := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		b.WriteByte(' ')
		if h.group != "" {
			b.WriteString(h.group)
			b.WriteByte('.')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \"=\n") || v == "" {
			fmt.Fprintf(&b, "%q", v)
		} else {
			b.WriteString(v)
		}
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(func(a slog.Attr) bool { write(a); return true })
	return strings.ReplaceAll(b.String(), "\n", " ")
}

// WithAttrs returns a handler with attrs added to both destinations.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &c
}

// WithGroup returns a handler with a group added to both destinations.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
