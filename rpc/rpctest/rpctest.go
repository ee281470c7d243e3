// Package rpctest provides in-memory GuestRPC peers for unit tests, in the
// mould of net/http/httptest: a function-backed fake RPCI host, a fake
// polling (backdoor-shaped) TCLO host, and a fake event (vsock-shaped) TCLO
// host over net.Pipe. They hold no goroutines of their own and work inside
// testing/synctest bubbles, so back-off timing is tested in fake time.
//
// Non-test code never imports this package (a dependency test enforces it).
package rpctest

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/sockchan"
)

// ErrClosed is returned by fake channels after Close or after the host
// side has been shut down.
var ErrClosed = errors.New("rpctest: channel closed")

// RPCIHost is a fake VMX for RPCI: every request is answered by Reply. It
// records every request and counts channel opens.
type RPCIHost struct {
	// Reply answers one request with a full reply ("1 ..." or "0 ...").
	Reply func(req []byte) []byte

	mu       sync.Mutex
	requests [][]byte
	opens    int
	failNext int // channel operations to fail before succeeding again
}

// Dial is an rpc.Dialer that opens a channel to the fake host.
func (h *RPCIHost) Dial(ctx context.Context) (rpc.Channel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opens++
	return &rpciChan{host: h}, nil
}

// Requests returns a copy of every request received, in order.
func (h *RPCIHost) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.requests))
	for i, r := range h.requests {
		out[i] = string(r)
	}
	return out
}

// Opens returns how many channels have been opened.
func (h *RPCIHost) Opens() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.opens
}

// FailNext makes the next n channel operations (sends or receives) fail
// with ErrClosed, as a channel invalidated by a VMX reset would.
func (h *RPCIHost) FailNext(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failNext = n
}

type rpciChan struct {
	host    *RPCIHost
	pending []byte
	has     bool
	closed  bool
}

func (c *rpciChan) fail() bool {
	c.host.mu.Lock()
	defer c.host.mu.Unlock()
	if c.host.failNext > 0 {
		c.host.failNext--
		return true
	}
	return false
}

func (c *rpciChan) Send(ctx context.Context, msg []byte) error {
	if c.closed || c.fail() {
		return ErrClosed
	}
	c.host.mu.Lock()
	c.host.requests = append(c.host.requests, append([]byte(nil), msg...))
	c.host.mu.Unlock()
	c.pending, c.has = c.host.Reply(msg), true
	return nil
}

func (c *rpciChan) Receive(ctx context.Context) ([]byte, error) {
	if c.closed || c.fail() {
		return nil, ErrClosed
	}
	if !c.has {
		return nil, errors.New("rpctest: receive without a request")
	}
	c.has = false
	return c.pending, nil
}

func (c *rpciChan) Close() error { c.closed = true; return nil }

// PollingHost is a fake VMX end of backdoor-shaped TCLO channels: the guest
// sends its previous reply and receives the next command, or an empty
// message when none is queued.
type PollingHost struct {
	mu      sync.Mutex
	cmds    chan exchange
	waiting *exchange // command delivered, reply not yet received
	polls   int
	closed  bool
}

type exchange struct {
	cmd   []byte
	reply chan []byte
}

// NewPollingHost returns an idle host.
func NewPollingHost() *PollingHost {
	return &PollingHost{cmds: make(chan exchange, 64)}
}

// Dial is an rpc.Dialer for the guest's TCLO loop.
func (h *PollingHost) Dial(ctx context.Context) (rpc.Channel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	return &pollChan{host: h}, nil
}

// Command queues cmd for the guest and waits for its reply.
func (h *PollingHost) Command(ctx context.Context, cmd string) (string, error) {
	ex := exchange{cmd: []byte(cmd), reply: make(chan []byte, 1)}
	select {
	case h.cmds <- ex:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case r := <-ex.reply:
		return string(r), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Polls returns how many receives the guest has made.
func (h *PollingHost) Polls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polls
}

// Shutdown makes every open and future channel fail, as a VMX that went
// away would.
func (h *PollingHost) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
}

type pollChan struct {
	host   *PollingHost
	closed bool
}

func (c *pollChan) Send(ctx context.Context, msg []byte) error {
	h := c.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.closed || h.closed {
		return ErrClosed
	}
	if h.waiting != nil {
		h.waiting.reply <- append([]byte(nil), msg...)
		h.waiting = nil
	}
	return nil
}

func (c *pollChan) Receive(ctx context.Context) ([]byte, error) {
	h := c.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.closed || h.closed {
		return nil, ErrClosed
	}
	h.polls++
	select {
	case ex := <-h.cmds:
		h.waiting = &ex
		return ex.cmd, nil
	default:
		return []byte{}, nil
	}
}

func (c *pollChan) Close() error { c.closed = true; return nil }

// EventHost is the VMX end of a vsock-shaped TCLO channel over net.Pipe,
// with the DataMap framing of package sockchan.
type EventHost struct {
	// Conn is the host's side; read the guest's replies (and see its
	// heartbeats through Pings) from it.
	Conn  net.Conn
	guest net.Conn
	host  *sockchan.Conn
}

// NewEventPipe returns a connected pair: the guest's event channel and the
// host's end.
func NewEventPipe() (rpc.EventChannel, *EventHost) {
	g, h := net.Pipe()
	return sockchan.New(g), &EventHost{Conn: h, guest: g, host: sockchan.New(h)}
}

// Command sends cmd and returns the guest's reply, skipping heartbeats.
func (e *EventHost) Command(ctx context.Context, cmd string) (string, error) {
	if err := e.host.Send(ctx, []byte(cmd)); err != nil {
		return "", err
	}
	r, err := e.host.Receive(ctx)
	return string(r), err
}

// Close closes both ends.
func (e *EventHost) Close() error {
	e.guest.Close()
	return e.Conn.Close()
}
