package hgfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/govmtools/govmtools/rpc"
)

// Transport carries one HGFS packet to the host and returns the reply
// packet.
type Transport interface {
	// RoundTrip sends packet and returns the reply. A host that has
	// shared folders disabled yields an error wrapping ErrDisabled.
	RoundTrip(ctx context.Context, packet []byte) ([]byte, error)
	// Concurrency is how many RoundTrips may usefully run at once.
	Concurrency() int
	// Close releases the transport's channels.
	Close() error
}

// ErrDisabled means the host answered the "f" RPC with a failure:
// shared folders are disabled (or the HGFS server is gone).
var ErrDisabled = errors.New("hgfs: shared folders are disabled on the host")

// RPCTransport sends HGFS packets as RPCI "f " commands over a pool of
// channels from Dial. Each channel carries one request at a time, so
// Channels is the number of requests in flight.
type RPCTransport struct {
	pool chan *rpc.Client
	all  []*rpc.Client
	// holdsCPU is whether the last call's channel keeps its CPU busy
	// for the call (the backdoor): see FanOut.
	holdsCPU atomic.Bool
}

// DefaultChannels is the default size of the channel pool.
const DefaultChannels = 4

// NewRPCTransport returns a transport over channels RPCI channels opened
// lazily by dial (0 means DefaultChannels).
func NewRPCTransport(dial rpc.Dialer, channels int, logger *slog.Logger) *RPCTransport {
	if channels <= 0 {
		channels = DefaultChannels
	}
	t := &RPCTransport{pool: make(chan *rpc.Client, channels)}
	for range channels {
		c := &rpc.Client{Dial: dial, Logger: logger}
		t.all = append(t.all, c)
		t.pool <- c
	}
	return t
}

// RoundTrip implements Transport.
func (t *RPCTransport) RoundTrip(ctx context.Context, packet []byte) ([]byte, error) {
	var c *rpc.Client
	select {
	case c = <-t.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { t.pool <- c }()
	msg := make([]byte, 0, 2+len(packet))
	msg = append(append(msg, 'f', ' '), packet...)
	reply, err := c.Call(ctx, msg)
	t.holdsCPU.Store(c.HoldsCPU())
	return reply, disabled(err)
}

// send is RoundTrip for a message already framed as "f " + packet,
// receiving the reply into buf when the channel can (the backdoor).
func (t *RPCTransport) send(ctx context.Context, msg, buf []byte) ([]byte, error) {
	var c *rpc.Client
	select {
	case c = <-t.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { t.pool <- c }()
	reply, err := c.CallInto(ctx, msg, buf)
	t.holdsCPU.Store(c.HoldsCPU())
	return reply, disabled(err)
}

// disabled maps an RPC failure reply to ErrDisabled.
func disabled(err error) error {
	if err != nil {
		var re *rpc.ReplyError
		if errors.As(err, &re) {
			return fmt.Errorf("%w (%s)", ErrDisabled, re.Text)
		}
	}
	return err
}

// Concurrency implements Transport.
func (t *RPCTransport) Concurrency() int { return len(t.all) }

// FanOut implements fanOuter: over the backdoor (a channel that holds its
// CPU for the call) the pieces of one read or write go out one after the
// other, since each call keeps its thread running in the guest until the
// VMX answers; the channels still carry independent requests side by
// side. Under the ptrace trap, 64 MiB written in 1 MiB calls cost the
// daemon about half the CPU this way at the same wall time
// (docs/benchmarks-floors.md). Over vsock and unix sockets a call waits
// in the kernel, and the pieces go out on every channel at once.
func (t *RPCTransport) FanOut() int {
	if t.holdsCPU.Load() {
		return 1
	}
	return len(t.all)
}

// HoldsCPU reports whether the channel of the last call keeps its CPU
// busy for a call (rpc.CPUHolder, the backdoor); false before any call.
func (t *RPCTransport) HoldsCPU() bool { return t.holdsCPU.Load() }

// Close implements Transport.
func (t *RPCTransport) Close() error {
	var errs []error
	for _, c := range t.all {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
