package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

// intoChannel answers Receive and ReceiveInto differently, so a test
// sees which one the client used.
type intoChannel struct{}

func (intoChannel) Send(ctx context.Context, req []byte) error  { return nil }
func (intoChannel) Receive(ctx context.Context) ([]byte, error) { return []byte("1 plain"), nil }
func (intoChannel) Close() error                                { return nil }
func (intoChannel) ReceiveInto(ctx context.Context, buf []byte) ([]byte, error) {
	return append(buf[:0], "1 into"...), nil
}

// TestCallIntoUsesTheBuffer: CallInto receives into the caller's buffer
// when the channel can; Call (no buffer) receives as usual.
func TestCallIntoUsesTheBuffer(t *testing.T) {
	c := &rpc.Client{Dial: func(ctx context.Context) (rpc.Channel, error) { return intoChannel{}, nil }}
	buf := make([]byte, 64)
	got, err := c.CallInto(t.Context(), []byte("x"), buf)
	if err != nil || string(got) != "into" || &got[0] != &buf[2] {
		t.Errorf("CallInto = %q %v (aliasing buf: %v)", got, err, err == nil && len(got) > 0 && &got[0] == &buf[2])
	}
	if got, err := c.Call(t.Context(), []byte("x")); err != nil || string(got) != "plain" {
		t.Errorf("Call = %q %v", got, err)
	}
}

// TestEmptySuccessReply: "1 " is a success with an empty payload.
func TestEmptySuccessReply(t *testing.T) {
	host := &rpctest.RPCIHost{Reply: func(req []byte) []byte { return []byte("1 ") }}
	c := &rpc.Client{Dial: host.Dial}
	if got, err := c.Call(t.Context(), []byte("tools.set.version 1")); err != nil || len(got) != 0 {
		t.Fatalf("Call = %q %v", got, err)
	}
	if n := host.Opens(); n != 1 {
		t.Errorf("the empty reply reopened the channel: %d opens", n)
	}
}

// TestCallIntoLimitsAndRetry: CallInto has Call's size limit, retries a
// transport failure once on a fresh channel (not with NoRetry, not
// twice) and passes host errors through; Close closes the open channel
// once.
func TestCallIntoLimitsAndRetry(t *testing.T) {
	host := &rpctest.RPCIHost{Reply: func(req []byte) []byte {
		if bytes.HasPrefix(req, []byte("bad")) {
			return []byte("0 nope")
		}
		return []byte("1 ok")
	}}
	c := &rpc.Client{Dial: host.Dial}
	ctx := t.Context()
	buf := make([]byte, 128)
	if _, err := c.CallInto(ctx, make([]byte, rpc.MaxMessage+1), buf); !errors.Is(err, rpc.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if got, err := c.CallInto(ctx, append([]byte("x "), make([]byte, rpc.MaxMessage-2)...), buf); err != nil || string(got) != "ok" {
		t.Fatalf("exactly 64 KiB: %q %v", got, err)
	}
	host.FailNext(1)
	if got, err := c.CallInto(ctx, []byte("b"), buf); err != nil || string(got) != "ok" {
		t.Fatalf("after one failure: %q %v", got, err)
	}
	host.FailNext(2)
	if _, err := c.CallInto(ctx, []byte("c"), buf); err == nil || !rpc.IsTransportError(err) {
		t.Fatalf("after two failures: %v", err)
	}
	var re *rpc.ReplyError
	if _, err := c.CallInto(ctx, []byte("bad"), buf); !errors.As(err, &re) || re.Text != "nope" {
		t.Fatalf("host error: %v", err)
	}
	nr := &rpc.Client{Dial: host.Dial, NoRetry: true}
	host.FailNext(1)
	if _, err := nr.CallInto(ctx, []byte("d"), buf); err == nil {
		t.Fatal("NoRetry client retried")
	}
	opens := host.Opens()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.CallInto(ctx, []byte("e"), buf); err != nil || host.Opens() != opens+1 {
		t.Fatalf("after Close: %v, %d opens (was %d)", err, host.Opens(), opens)
	}
}
