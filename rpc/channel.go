package rpc

import (
	"context"
	"errors"
	"fmt"
)

// Channel is one open GuestRPC message channel: a backdoor message channel,
// or a stream carrying DataMap packets.
//
// For RPCI the guest sends a request and receives the reply. For TCLO over a
// polling channel the guest sends its previous reply and then receives the
// next command (an empty message means none is waiting); over an
// EventChannel Receive blocks until the host sends a command.
type Channel interface {
	// Send delivers one message to the VMX.
	Send(ctx context.Context, msg []byte) error
	// Receive returns the next message from the VMX.
	Receive(ctx context.Context) ([]byte, error)
	// Close releases the channel. It may be called concurrently with a
	// blocked Receive, which then returns an error.
	Close() error
}

// IntoReceiver is a Channel that can receive into a buffer the caller
// owns, sparing an allocation per message on hot paths (HGFS reads). The
// returned message is buf[:n] when buf is large enough, else a new slice.
type IntoReceiver interface {
	ReceiveInto(ctx context.Context, buf []byte) ([]byte, error)
}

// CPUHolder is a Channel whose calls keep the calling CPU busy until the
// host answers: the backdoor, where each instruction is a VM exit that
// the VMX serves before the vCPU runs on. Calls on several such channels
// at once overlap no more than the guest has CPUs, and every thread that
// waits in one is a thread the guest's scheduler must run.
type CPUHolder interface {
	HoldsCPU() bool
}

// EventChannel is a Channel on which the host sends first and Receive blocks
// (vsock and vmxsim's unix sockets). The guest keeps it alive with Ping.
type EventChannel interface {
	Channel
	// Ping sends a heartbeat packet (TYPE=PING, no payload).
	Ping(ctx context.Context) error
}

// Resumable is a Channel whose VMX side outlives the guest process that
// opened it and on which a Send that returned nil has been acted on: a
// backdoor message channel. The VMX cannot tell guest processes apart (a
// channel is a number and a cookie that any process may present), so it
// keeps the channel, and the reply to its last request, until the channel
// is closed, the guest is reset or a checkpoint invalidates it; and it
// answers a request when its last byte arrives, before the call that
// carried that byte returns (open-vm-tools' RpcOut_send receives the reply
// right after sending and treats an empty one as an error).
//
// A process that records Token before each request can therefore, after
// it was killed and restarted, open the channel again (rpc/transport's
// Resume) and learn from one Receive whether its last request reached the
// VMX: a non-empty message is that request's reply, still waiting; an
// empty one means the request never arrived whole. Anything else (the
// channel is gone) leaves the question open.
type Resumable interface {
	Channel
	// Token names the channel for a later process. It is "" when the
	// channel cannot be found again safely: a VMX that gave it no cookie
	// may hand its number to another process once it is closed.
	Token() string
}

// Dialer opens a new channel. RPCI and TCLO channels are opened by
// different dialers; rpc/transport provides them.
type Dialer func(ctx context.Context) (Channel, error)

// MaxMessage is GUESTMSG_MAX_IN_SIZE, the largest message the VMX accepts
// from the guest (64 KiB).
const MaxMessage = 64 << 10

// ErrTooLarge is returned for a guest message over MaxMessage; the VMX would
// refuse it, so it is never sent.
var ErrTooLarge = errors.New("rpc: message over 64 KiB")

// ReplyError is an RPCI request that the VMX answered with "0 ": the request
// reached the host and was refused. Text is the host's reason, e.g.
// "Unknown command" or "No value found".
type ReplyError struct {
	Request string // the command name, for context
	Text    string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("rpc: %s: host replied: %s", e.Request, e.Text)
}

// ProtocolError is a reply that follows neither framing ("1 "/"0 " for RPCI).
type ProtocolError struct {
	Request string
	Reply   []byte
}

func (e *ProtocolError) Error() string {
	r := e.Reply
	if len(r) > 32 {
		r = r[:32]
	}
	return fmt.Sprintf("rpc: %s: malformed reply %q", e.Request, r)
}

// commandName returns the first word of a request, for error messages.
func commandName(req []byte) string {
	for i, c := range req {
		if c == ' ' || c == 0 {
			return string(req[:i])
		}
	}
	if len(req) > 64 {
		return string(req[:64])
	}
	return string(req)
}
