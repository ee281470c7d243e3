package vmbackup

import (
	"context"
	"log/slog"
	"sync"
)

// MaxHeldLogs bounds the log records kept in memory while frozen
// (vmtoolsd's [logging] maxCacheEntries default); the oldest go first.
const MaxHeldLogs = 4096

// holdHandler keeps log records in memory while the file systems are
// frozen, so no log write (a journal or file on a frozen /var) can block
// the thaw (open-vm-tools#650), and writes them out after the thaw.
type holdHandler struct {
	inner slog.Handler
	st    *holdState
}

type holdState struct {
	mu      sync.Mutex
	held    bool
	recs    []heldRecord
	dropped int
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

func newHoldHandler(inner slog.Handler) *holdHandler {
	return &holdHandler{inner: inner, st: &holdState{}}
}

func (h *holdHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *holdHandler) Handle(ctx context.Context, r slog.Record) error {
	h.st.mu.Lock()
	if h.st.held {
		if len(h.st.recs) >= MaxHeldLogs {
			h.st.recs = h.st.recs[1:]
			h.st.dropped++
		}
		h.st.recs = append(h.st.recs, heldRecord{h.inner, r.Clone()})
		h.st.mu.Unlock()
		return nil
	}
	h.st.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

func (h *holdHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &holdHandler{inner: h.inner.WithAttrs(a), st: h.st}
}

func (h *holdHandler) WithGroup(g string) slog.Handler {
	return &holdHandler{inner: h.inner.WithGroup(g), st: h.st}
}

// hold starts keeping records.
func (h *holdHandler) hold() {
	h.st.mu.Lock()
	h.st.held = true
	h.st.mu.Unlock()
}

// release writes the kept records out and stops keeping them. Only call
// it once nothing is frozen.
func (h *holdHandler) release() {
	h.st.mu.Lock()
	if !h.st.held {
		h.st.mu.Unlock()
		return
	}
	recs, dropped := h.st.recs, h.st.dropped
	h.st.held, h.st.recs, h.st.dropped = false, nil, 0
	h.st.mu.Unlock()
	for _, r := range recs {
		r.h.Handle(context.Background(), r.r)
	}
	if dropped > 0 {
		h.inner.Handle(context.Background(), slog.NewRecord(recs[0].r.Time, slog.LevelWarn, "log records dropped while frozen", 0))
	}
}
