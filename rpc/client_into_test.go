package rpc_test

import (
	"context"
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
