package backdoor_test

import (
	"context"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
	simbd "github.com/govmtools/govmtools/vmxsim/backdoor"
)

// TestReceiveEdges: a reply exactly the size of the caller's buffer is
// received into it; a message of exactly MaxReceive bytes is not refused
// as too large; an empty message takes no high-bandwidth transfer.
func TestReceiveEdges(t *testing.T) {
	_, b, port := newSim(t, simbd.Options{})
	ch, err := backdoor.Open(port, backdoor.ProtoRPCI)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	client := &rpc.Client{Dial: func(context.Context) (rpc.Channel, error) { return ch, nil }, NoRetry: true}
	v := value(1000)
	if _, err := client.Call(t.Context(), append([]byte("info-set guestinfo.k "), v...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(v)+2) // "1 " and the value, exactly
	hb := b.Stats().HBIn
	got, err := client.CallInto(t.Context(), []byte("info-get guestinfo.k"), buf)
	if b.Stats().HBIn == hb {
		t.Error("a 1002-byte reply did not come over the high-bandwidth port")
	}
	if err != nil || string(got) != string(v) || &got[0] != &buf[2] {
		t.Fatalf("CallInto with an exact buffer: %d bytes, %v, aliasing %v", len(got), err, err == nil && &got[0] == &buf[2])
	}

	// The VMX announces an empty message: no HB transfer for it.
	if err := ch.Send(t.Context(), []byte("info-get guestinfo.k")); err != nil {
		t.Fatal(err)
	}
	port.after = func(n int, r *backdoor.Regs) {
		if uint16(r.CX>>16)&2 != 0 && r.BX < 1<<30 { // the RECVSIZE answer
			r.BX = 0
		}
	}
	before := b.Stats().HBIn
	ch.Receive(t.Context())
	if after := b.Stats().HBIn; after != before {
		t.Errorf("an empty message took %d HB transfers", after-before)
	}

	// Exactly MaxReceive announced: refused as too large it must not be
	// (whatever the transfer then does with the smaller real message).
	if err := ch.Send(t.Context(), []byte("info-get guestinfo.k")); err != nil {
		t.Fatal(err)
	}
	port.after = func(n int, r *backdoor.Regs) {
		if uint16(r.CX>>16)&2 != 0 && r.BX < 1<<30 {
			r.BX = backdoor.MaxReceive
		}
	}
	if _, err := ch.Receive(t.Context()); err != nil && strings.Contains(err.Error(), "exceeds") {
		t.Errorf("a message of exactly MaxReceive bytes: %v", err)
	}
	port.after = nil

	// A message of exactly rpc.MaxMessage bytes may be sent.
	msg := append([]byte("info-set guestinfo.big "), make([]byte, rpc.MaxMessage-len("info-set guestinfo.big "))...)
	if err := ch.Send(t.Context(), msg); err != nil {
		t.Errorf("Send of exactly %d bytes: %v", rpc.MaxMessage, err)
	}
}
