package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Client is an RPCI client over one persistent channel. The channel is
// opened on first use and kept; after a transport failure it is closed,
// reopened and the request retried once, as open-vm-tools' RpcChannel does
// (a send right after a VMX reset or checkpoint finds the old channel
// invalid). A Client is safe for concurrent use; calls are serialized.
type Client struct {
	// Dial opens an RPCI channel.
	Dial Dialer
	// NoRetry disables the single retry after a transport failure, for
	// callers that prefer a lost request to a possibly repeated one.
	NoRetry bool
	// Logger receives channel reopen events; nil discards them.
	Logger *slog.Logger

	mu sync.Mutex
	ch Channel // nil until first use or after a failure
}

// Call sends one request and returns the payload of a "1 " reply. A "0 "
// reply is returned as a *ReplyError, a reply in neither form as a
// *ProtocolError; anything else is a transport error.
func (c *Client) Call(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) > MaxMessage {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrTooLarge, commandName(req), len(req))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	reply, err := c.roundTrip(ctx, req)
	if err != nil && !c.NoRetry && ctx.Err() == nil && isTransport(err) {
		c.logger().Debug("rpci channel failed, reopening", "request", commandName(req), "err", err)
		reply, err = c.roundTrip(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	return parseReply(req, reply)
}

// CallInto is Call receiving the reply into buf when the channel can
// (IntoReceiver): the returned payload may then alias buf, which the
// caller must not reuse while it needs the payload.
func (c *Client) CallInto(ctx context.Context, req, buf []byte) ([]byte, error) {
	if len(req) > MaxMessage {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrTooLarge, commandName(req), len(req))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	reply, err := c.roundTripInto(ctx, req, buf)
	if err != nil && !c.NoRetry && ctx.Err() == nil && isTransport(err) {
		c.logger().Debug("rpci channel failed, reopening", "request", commandName(req), "err", err)
		reply, err = c.roundTripInto(ctx, req, buf)
	}
	if err != nil {
		return nil, err
	}
	return parseReply(req, reply)
}

// CallString is Call for text requests and replies.
func (c *Client) CallString(ctx context.Context, req string) (string, error) {
	b, err := c.Call(ctx, []byte(req))
	return string(b), err
}

// HoldsCPU reports whether the open channel keeps the calling CPU busy
// for the length of a call (rpc.CPUHolder, the backdoor); false when no
// channel is open.
func (c *Client) HoldsCPU() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.ch.(CPUHolder)
	return ok && h.HoldsCPU()
}

// Close closes the persistent channel, if open.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		return nil
	}
	err := c.ch.Close()
	c.ch = nil
	return err
}

// roundTrip sends req and receives the raw reply, opening the channel if
// needed and dropping it on any failure. Preconditions: c.mu is held.
func (c *Client) roundTrip(ctx context.Context, req []byte) ([]byte, error) {
	return c.roundTripInto(ctx, req, nil)
}

// roundTripInto is roundTrip receiving into buf if the channel can.
func (c *Client) roundTripInto(ctx context.Context, req, buf []byte) ([]byte, error) {
	if c.ch == nil {
		if c.Dial == nil {
			return nil, transportErr{errors.New("rpc: client has no dialer")}
		}
		ch, err := c.Dial(ctx)
		if err != nil {
			return nil, transportErr{fmt.Errorf("rpc: open rpci channel: %w", err)}
		}
		c.ch = ch
	}
	if err := c.ch.Send(ctx, req); err != nil {
		c.drop()
		return nil, transportErr{fmt.Errorf("rpc: send %s: %w", commandName(req), err)}
	}
	var reply []byte
	var err error
	if ir, ok := c.ch.(IntoReceiver); ok && buf != nil {
		reply, err = ir.ReceiveInto(ctx, buf)
	} else {
		reply, err = c.ch.Receive(ctx)
	}
	if err != nil {
		c.drop()
		return nil, transportErr{fmt.Errorf("rpc: receive reply to %s: %w", commandName(req), err)}
	}
	if !validReply(reply) {
		// The stream may be out of step; start afresh next time.
		c.drop()
	}
	return reply, nil
}

func (c *Client) drop() {
	if c.ch != nil {
		c.ch.Close()
		c.ch = nil
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func validReply(r []byte) bool {
	return len(r) >= 2 && (r[0] == '1' || r[0] == '0') && r[1] == ' '
}

// parseReply splits an RPCI reply into payload or error. The payload is
// returned as received: binary replies (HGFS) may end in a NUL byte.
func parseReply(req, r []byte) ([]byte, error) {
	if !validReply(r) {
		return nil, &ProtocolError{Request: commandName(req), Reply: r}
	}
	if r[0] == '0' {
		return nil, &ReplyError{Request: commandName(req), Text: string(bytes.TrimRight(r[2:], "\x00"))}
	}
	return r[2:], nil
}

// transportErr marks failures of the channel itself (as opposed to a reply
// from the host), which are worth one retry on a fresh channel.
type transportErr struct{ err error }

func (e transportErr) Error() string { return e.err.Error() }
func (e transportErr) Unwrap() error { return e.err }

func isTransport(err error) bool {
	var te transportErr
	return errors.As(err, &te)
}

// IsTransportError reports whether err came from the channel (open, send or
// receive failed) rather than from the host's reply.
func IsTransportError(err error) bool { return isTransport(err) }
