package kmsgdump

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

// fakeHost is a VMX that keeps the "log" lines it is sent. It can be
// unreachable (dials and requests fail), and a hook can interrupt a
// request before the host acts on it.
type fakeHost struct {
	mu    sync.Mutex
	lines []string
	down  bool
	opens int
	dials int // attempts, failed ones included
	// before, if set, runs before a log line is accepted; returning
	// false fails the request without logging the line.
	before func(n int, line string) bool
}

var errDown = errors.New("fake host: unreachable")

func (h *fakeHost) dial(ctx context.Context) (rpc.Channel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dials++
	if h.down {
		return nil, errDown
	}
	h.opens++
	return &fakeChan{h: h}, nil
}

func (h *fakeHost) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

func (h *fakeHost) attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dials
}

func (h *fakeHost) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.lines...)
}

func (h *fakeHost) shipper() *Shipper {
	return &Shipper{Client: &rpc.Client{Dial: h.dial, NoRetry: true}, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
}

type fakeChan struct {
	h     *fakeHost
	reply []byte
}

func (c *fakeChan) Send(ctx context.Context, msg []byte) error {
	h := c.h
	h.mu.Lock()
	down, before, n := h.down, h.before, len(h.lines)
	h.mu.Unlock()
	if down {
		return errDown
	}
	text, ok := bytes.CutPrefix(msg, []byte("log "))
	if !ok {
		c.reply = []byte("0 Unknown command")
		return nil
	}
	if before != nil && !before(n, string(text)) {
		return errDown
	}
	h.mu.Lock()
	h.lines = append(h.lines, string(text))
	h.mu.Unlock()
	c.reply = []byte("1 ")
	return nil
}

func (c *fakeChan) Receive(ctx context.Context) ([]byte, error) {
	c.h.mu.Lock()
	down := c.h.down
	c.h.mu.Unlock()
	if down {
		return nil, errDown
	}
	return c.reply, nil
}

func (c *fakeChan) Close() error { return nil }
