package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
)

// stderrHandler writes text records to stderr. When stderr is the
// journal's stream (JOURNAL_STREAM set), each line starts with its syslog
// priority ("<4>"), which journald turns into the entry's priority, so
// `journalctl -p warning -u vmtoolsd` works; the time is then left to the
// journal.
type stderrHandler struct {
	mu      *sync.Mutex
	w       io.Writer
	level   slog.Leveler
	journal bool
	inner   slog.Handler
	buf     *bytes.Buffer
}

func newStderrHandler(w io.Writer, level slog.Leveler, journal bool) slog.Handler {
	buf := &bytes.Buffer{}
	opts := &slog.HandlerOptions{Level: level}
	if journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	return &stderrHandler{mu: &sync.Mutex{}, w: w, level: level, journal: journal, inner: slog.NewTextHandler(buf, opts), buf: buf}
}

func (h *stderrHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *stderrHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	if h.journal {
		prio := "<6>"
		switch {
		case r.Level >= slog.LevelError:
			prio = "<3>"
		case r.Level >= slog.LevelWarn:
			prio = "<4>"
		case r.Level < slog.LevelInfo:
			prio = "<7>"
		}
		if _, err := io.WriteString(h.w, prio); err != nil {
			return err
		}
	}
	_, err := h.w.Write(h.buf.Bytes())
	return err
}

func (h *stderrHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	return &c
}

func (h *stderrHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
