package kmsgdump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

// fakeHost is a VMX that keeps the "log" lines it is sent. It can be
// unreachable (dials and requests fail), hooks can interrupt a request
// before the host acts on it or kill the sender at a chosen moment, and
// its channels can be resumable like backdoor channels: they outlive the
// process that opened them, with the reply to their last request.
type fakeHost struct {
	mu        sync.Mutex
	lines     []string
	down      bool
	opens     int
	dials     int  // attempts, failed ones included
	resumable bool // channels have tokens and survive their process
	chans     map[int]*fakeChan
	nextID    int
	// before, if set, runs before a log line is accepted; returning
	// false fails the request without logging the line.
	before func(n int, line string) bool
	// kill, if set, runs at "send" (the line not yet logged), "sent"
	// (logged, the reply waiting, before the sender hears of it) and
	// "receive" (as the sender collects the reply); it may end the
	// sending goroutine with runtime.Goexit, as a SIGKILL would.
	kill func(at string, n int, line string)
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
	h.nextID++
	c := &fakeChan{h: h, id: h.nextID}
	if h.chans == nil {
		h.chans = map[int]*fakeChan{}
	}
	h.chans[c.id] = c
	if h.resumable {
		return &resumableChan{c}, nil
	}
	return c, nil
}

// resume finds a resumable channel by its token.
func (h *fakeHost) resume(token string) (rpc.Channel, error) {
	var id int
	if _, err := fmt.Sscanf(token, "fake-%d", &id); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.chans[id]
	if c == nil {
		c = &fakeChan{h: h, id: id, closed: true}
	}
	return &resumableChan{c}, nil
}

// open returns how many channels are open.
func (h *fakeHost) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.chans)
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
	return &Shipper{Dial: h.dial, Resume: h.resume, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
}

type fakeChan struct {
	h      *fakeHost
	id     int
	reply  []byte // waiting for the guest; nil when none
	closed bool
	n      int    // the line number of the last request
	line   string // and its text
}

func (c *fakeChan) Send(ctx context.Context, msg []byte) error {
	h := c.h
	h.mu.Lock()
	down, before, kill, n, closed := h.down, h.before, h.kill, len(h.lines), c.closed
	h.mu.Unlock()
	if down || closed {
		return errDown
	}
	text, ok := bytes.CutPrefix(msg, []byte("log "))
	if !ok {
		c.reply = []byte("0 Unknown command")
		return nil
	}
	if kill != nil {
		kill("send", n, string(text))
	}
	if before != nil && !before(n, string(text)) {
		return errDown
	}
	h.mu.Lock()
	h.lines = append(h.lines, string(text))
	c.reply, c.n, c.line = []byte("1 "), n, string(text)
	h.mu.Unlock()
	if kill != nil {
		kill("sent", n, string(text))
	}
	return nil
}

func (c *fakeChan) Receive(ctx context.Context) ([]byte, error) {
	h := c.h
	h.mu.Lock()
	down, kill, closed, n, line := h.down, h.kill, c.closed, c.n, c.line
	h.mu.Unlock()
	if down || closed {
		return nil, errDown
	}
	if kill != nil && c.reply != nil {
		kill("receive", n, line)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := c.reply
	c.reply = nil
	if r == nil {
		r = []byte{}
	}
	return r, nil
}

func (c *fakeChan) Close() error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	c.closed = true
	delete(c.h.chans, c.id)
	return nil
}

// resumableChan is a fakeChan with a token.
type resumableChan struct{ *fakeChan }

func (c *resumableChan) Token() string { return fmt.Sprintf("fake-%d", c.id) }

// withoutNotes drops kmsgdump's resume and interruption notes.
func withoutNotes(lines []string) (kept, notes []string) {
	for _, l := range lines {
		if strings.HasPrefix(l, "kmsgdump: resume ") || strings.HasPrefix(l, "kmsgdump: the previous run was interrupted") {
			notes = append(notes, l)
			continue
		}
		kept = append(kept, l)
	}
	return kept, notes
}
