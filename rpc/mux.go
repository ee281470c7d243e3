package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
)

// TCLO reply prefixes and fixed replies, exactly as vmtoolsd writes them.
const (
	OKPrefix            = "OK "
	ErrorPrefix         = "ERROR "
	UnknownCommandReply = "ERROR Unknown Command"
	BadCommandReply     = "ERROR Bad command"
)

// Handler answers one TCLO command. args holds the bytes after the command
// name and its single separating space (it may be empty, and may itself
// start with further spaces). A nil error makes the reply "OK " + result;
// an error makes it "ERROR " + the error text. Return a Failure for the
// protocol's own error texts; other errors are also logged.
type Handler interface {
	ServeTCLO(ctx context.Context, args []byte) (result []byte, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, args []byte) ([]byte, error)

// ServeTCLO calls f.
func (f HandlerFunc) ServeTCLO(ctx context.Context, args []byte) ([]byte, error) {
	return f(ctx, args)
}

// Failure is a handler error whose reply text is fixed by the protocol, e.g.
// "Unknown or invalid option"; it is sent verbatim after "ERROR ".
type Failure string

func (f Failure) Error() string { return string(f) }

// Mux dispatches TCLO commands by name. The zero value is an empty Mux ready
// for use. Handlers may be added while the Mux is serving.
type Mux struct {
	// Logger receives handler failures and panics; nil discards them.
	Logger *slog.Logger

	mu       sync.RWMutex
	handlers map[string]Handler
}

// Handle registers h for the command name, replacing any earlier handler.
func (m *Mux) Handle(name string, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = map[string]Handler{}
	}
	m.handlers[name] = h
}

// HandleFunc registers f for the command name.
func (m *Mux) HandleFunc(name string, f func(ctx context.Context, args []byte) ([]byte, error)) {
	m.Handle(name, HandlerFunc(f))
}

// Handler returns the handler registered for name, or nil.
func (m *Mux) Handler(name string) Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.handlers[name]
}

// SplitCommand splits a TCLO request into its name and arguments: one
// trailing NUL is dropped, the name ends at the first space or NUL, and one
// separator after it is skipped.
func SplitCommand(req []byte) (name string, args []byte) {
	req = bytes.TrimSuffix(req, []byte{0})
	i := bytes.IndexAny(req, " \x00")
	if i < 0 {
		return string(req), nil
	}
	return string(req[:i]), req[i+1:]
}

// Dispatch runs the handler for req and returns the framed reply. It never
// panics: a handler that panics is answered "ERROR " and logged with its
// stack, and the caller keeps serving.
func (m *Mux) Dispatch(ctx context.Context, req []byte) (reply []byte) {
	name, args := SplitCommand(req)
	if name == "" {
		return []byte(BadCommandReply)
	}
	h := m.Handler(name)
	if h == nil {
		return []byte(UnknownCommandReply)
	}
	defer func() {
		if p := recover(); p != nil {
			m.logger().Error("tclo handler panicked", "command", name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			reply = []byte(ErrorPrefix + "internal error in " + name)
		}
	}()
	result, err := h.ServeTCLO(ctx, args)
	if err != nil {
		var f Failure
		if errors.As(err, &f) {
			return append([]byte(ErrorPrefix), f...)
		}
		m.logger().Warn("tclo handler failed", "command", name, "err", err)
		return append([]byte(ErrorPrefix), err.Error()...)
	}
	return append([]byte(OKPrefix), result...)
}

func (m *Mux) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}
