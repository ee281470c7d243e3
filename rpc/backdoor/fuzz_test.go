package backdoor_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/govmtools/govmtools/rpc/backdoor"
)

// scripted is a VMX whose every answer comes from a byte script: each
// low-bandwidth call sets AX, BX, CX, DX, SI, DI from the next 24 bytes,
// and a high-bandwidth receive fills the buffer from the script, then
// sets BX; an exhausted script answers zeros (failure).
type scripted struct {
	b     []byte
	calls int
}

func (s *scripted) word() uint64 {
	if len(s.b) < 4 {
		s.b = nil
		return 0
	}
	w := binary.LittleEndian.Uint32(s.b)
	s.b = s.b[4:]
	return uint64(w)
}

func (s *scripted) LB(r *backdoor.Regs) {
	s.calls++
	r.AX, r.BX, r.CX, r.DX, r.SI, r.DI = s.word(), s.word(), s.word(), s.word(), s.word(), s.word()
}

func (s *scripted) HBOut(r *backdoor.Regs, src []byte) { r.BX = s.word() }

func (s *scripted) HBIn(r *backdoor.Regs, dst []byte) {
	n := copy(dst, s.b)
	s.b = s.b[n:]
	r.BX = s.word()
}

// regs is one scripted low-bandwidth answer.
func regs(ax, bx, cx, dx, si, di uint32) []byte {
	var b []byte
	for _, w := range []uint32{ax, bx, cx, dx, si, di} {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

// FuzzChannelReceive: whatever the VMX answers, Receive returns a message
// no longer than MaxReceive, or an error, after a bounded number of
// calls.
func FuzzChannelReceive(f *testing.F) {
	open := regs(0, 0, 1<<16, 3<<16, 0x1234, 0x5678)
	// A 5-byte message over the low-bandwidth path.
	msg := append(append([]byte(nil), open...), regs(0, 5, 0x3<<16, 3<<16|1<<16, 0, 0)...)
	msg = append(msg, regs(0, 0x34333231, 1<<16, 3<<16|2<<16, 0, 0)...)
	msg = append(msg, regs(0, 0x35, 1<<16, 3<<16|2<<16, 0, 0)...)
	msg = append(msg, regs(0, 0, 1<<16, 0, 0, 0)...)
	f.Add(msg)
	f.Add(open)
	f.Add(append(append([]byte(nil), open...), regs(0, 0xffffffff, 0x83<<16, 3<<16|1<<16, 0, 0)...))
	f.Fuzz(func(t *testing.T, script []byte) {
		h := &scripted{b: script}
		ch, err := backdoor.Open(h, backdoor.ProtoRPCI)
		if err != nil {
			return
		}
		m, err := ch.Receive(t.Context())
		if err == nil && len(m) > backdoor.MaxReceive {
			t.Fatalf("message of %d bytes", len(m))
		}
		if h.calls > 3+backdoor.MaxReceive/4+16 {
			t.Fatalf("%d calls", h.calls)
		}
	})
}

// FuzzReadHostTime: any answers to the time calls give a time with
// microseconds below a million and non-negative seconds, or an error.
func FuzzReadHostTime(f *testing.F) {
	f.Add(regs(backdoor.Magic, 500000, 1000, 0x12345678, 0, 7))
	f.Add(append(regs(0, 0, 0, 0, 0, 0), regs(0xffffffff, 0, 0, 0, 0, 0)...))
	f.Add(append(append(regs(0, 0, 0, 0, 0, 0), regs(0, 0, 0, 0, 0, 0)...), regs(1700000000, 999999, 5, 0, 0, 0)...))
	f.Fuzz(func(t *testing.T, script []byte) {
		ht, err := backdoor.ReadHostTime(&scripted{b: script})
		if err != nil {
			return
		}
		if ht.Time.Before(time.Unix(0, 0)) || ht.Time.Nanosecond()%1000 != 0 || ht.MaxLag < 0 {
			t.Fatalf("host time %+v", ht)
		}
	})
}
