package kmsgdump

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/govmtools/govmtools/rpc"
)

// lossyChan loses the reply of its first request: the host has the line
// but the receive fails, as when a checkpoint invalidates the channel
// between the send and the receive.
type lossyChan struct {
	rpc.Channel
	lost *bool
}

func (c *lossyChan) Receive(ctx context.Context) ([]byte, error) {
	if !*c.lost {
		*c.lost = true
		c.Channel.Receive(ctx)
		return nil, errors.New("receive failed")
	}
	return c.Channel.Receive(ctx)
}

type lossyResumable struct{ *lossyChan }

func (c lossyResumable) Token() string { return c.Channel.(rpc.Resumable).Token() }

// TestShipperLostReply: over a resumable channel a line whose send
// completed has reached the host, so a lost reply does not make it go
// again; over a stream it may not have, so the line is sent again.
func TestShipperLostReply(t *testing.T) {
	for _, resumable := range []bool{true, false} {
		h := &fakeHost{resumable: resumable}
		lost := false
		s := &Shipper{Dial: func(ctx context.Context) (rpc.Channel, error) {
			ch, err := h.dial(ctx)
			if err != nil {
				return nil, err
			}
			l := &lossyChan{Channel: ch, lost: &lost}
			if resumable {
				return lossyResumable{l}, nil
			}
			return l, nil
		}}
		if err := s.Log(t.Context(), []byte("one"), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Log(t.Context(), []byte("two"), nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
		want := "one two"
		if !resumable {
			want = "one one two"
		}
		if got := fmt.Sprint(h.got()); got != "["+want+"]" {
			t.Errorf("resumable=%v: host has %s, want [%s]", resumable, got, want)
		}
		if h.opens != 2 {
			t.Errorf("resumable=%v: %d channels opened, want a new one after the failure", resumable, h.opens)
		}
	}
}
