package vmxlog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) Call(ctx context.Context, req []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, string(req))
	return []byte("1 "), nil
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string{}, r.reqs...)
}

func TestHandlerTeesWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		sink := NewSink(rec, Options{Prefix: "vmtoolsd: "})
		var out bytes.Buffer
		lg := slog.New(NewHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}), sink, nil))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { sink.Run(ctx); close(done) }()

		lg.Debug("debug line")
		lg.Info("info line")
		lg.With("component", "power").Warn("script failed", "exit", 3, "path", "/etc/my script")
		lg.Error("broken\nline")
		synctest.Wait()
		got := rec.lines()
		want := []string{
			"log vmtoolsd: WARN script failed component=power exit=3 path=\"/etc/my script\"\x00",
			"log vmtoolsd: ERROR broken line\x00",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("sent %q\nwant %q", got, want)
		}
		if s := out.String(); !strings.Contains(s, "info line") || strings.Contains(s, "debug line") || !strings.Contains(s, "script failed") {
			t.Fatalf("stderr handler got:\n%s", s)
		}
		cancel()
		<-done
	})
}

func TestDedupAndRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		sink := NewSink(rec, Options{Burst: 3, Every: 10 * time.Second, DedupWindow: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { sink.Run(ctx); close(done) }()

		// The same error every second for 30 s: one line, then a count.
		for range 30 {
			sink.Log("GetDiskInfo failed")
			time.Sleep(time.Second)
		}
		synctest.Wait()
		time.Sleep(11 * time.Second)
		synctest.Wait()
		got := rec.lines()
		want := []string{"log GetDiskInfo failed\x00", "log last message repeated 29 times\x00"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("dedup: %q", got)
		}

		// A burst of distinct lines: 3 tokens (one regained meanwhile),
		// the rest counted and reported when tokens return.
		time.Sleep(time.Minute) // refill
		for i := range 20 {
			sink.Log("distinct " + string(rune('a'+i)))
		}
		synctest.Wait()
		n := len(rec.lines()) - len(want)
		if n != 3 {
			t.Fatalf("burst sent %d lines, want 3: %q", n, rec.lines())
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		last := rec.lines()[len(rec.lines())-1]
		if last != "log 17 log lines suppressed (rate limit)\x00" {
			t.Fatalf("suppression report %q", last)
		}
		cancel()
		<-done
	})
}

// TestLongLineAndFullQueue: Log never blocks; a full queue drops the
// lines past it and Run says how many; a long line is cut to MaxLine.
func TestLongLineAndFullQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		sink := NewSink(rec, Options{Burst: 1000, Every: 10 * time.Second})
		// Not running: the queue fills and Log must not block.
		const extra = 10
		for i := range queueLen + extra {
			sink.Log(fmt.Sprintf("%03d %s", i, strings.Repeat("x", 5000)))
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { sink.Run(ctx); close(done) }()
		synctest.Wait() // Run has sent what it could and waits for more
		time.Sleep(11 * time.Second)
		synctest.Wait()
		cancel()
		<-done
		l := rec.lines()
		if len(l) != queueLen+1 {
			t.Fatalf("sent %d lines, want the %d queued and a drop report", len(l), queueLen)
		}
		for i, line := range l[:queueLen] {
			if len(line) != MaxLine || !strings.HasSuffix(line, "\x00") || !strings.HasPrefix(line, fmt.Sprintf("log %03d x", i)) {
				t.Fatalf("line %d: %d bytes %.20q, want %d bytes in order", i, len(line), line, MaxLine)
			}
		}
		if want := fmt.Sprintf("log %d log lines suppressed (rate limit)\x00", extra); l[queueLen] != want {
			t.Fatalf("after the queued lines %q, want %q", l[queueLen], want)
		}
	})
}
