package rpc

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRPCReply: any reply from the VMX is a payload (after "1 "), a
// ReplyError (after "0 ") or a ProtocolError; never a panic.
func FuzzRPCReply(f *testing.F) {
	for _, s := range []string{"1 ", "1 ok", "0 Unknown command", "0 x\x00", "", "1", "2 x", "1 \x00bin\x00"} {
		f.Add([]byte("info-get guestinfo.x"), []byte(s))
	}
	f.Fuzz(func(t *testing.T, req, reply []byte) {
		p, err := parseReply(req, reply)
		var re *ReplyError
		var pe *ProtocolError
		switch {
		case err == nil:
			if !bytes.HasPrefix(reply, []byte("1 ")) || !bytes.Equal(p, reply[2:]) {
				t.Fatalf("reply %q gave payload %q", reply, p)
			}
		case errors.As(err, &re):
			if !bytes.HasPrefix(reply, []byte("0 ")) {
				t.Fatalf("reply %q gave %v", reply, err)
			}
		case errors.As(err, &pe):
			if validReply(reply) {
				t.Fatalf("valid reply %q refused", reply)
			}
		default:
			t.Fatalf("reply %q: %v", reply, err)
		}
	})
}
