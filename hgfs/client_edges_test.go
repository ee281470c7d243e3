package hgfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// hookTransport is simTransport with a hook that may rewrite (or fail)
// each reply.
type hookTransport struct {
	simTransport
	hook func(req, reply []byte) ([]byte, error)
}

func (h *hookTransport) RoundTrip(ctx context.Context, p []byte) ([]byte, error) {
	out, err := h.simTransport.RoundTrip(ctx, p)
	if err == nil && h.hook != nil {
		return h.hook(p, out)
	}
	return out, err
}

func newHooked(t *testing.T, hook func(req, reply []byte) ([]byte, error)) (*Client, *hookTransport, *logBuf, error) {
	t.Helper()
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: t.TempDir()}}})
	tr := &hookTransport{simTransport: simTransport{h: h, conc: 1}, hook: hook}
	lb := &logBuf{}
	c, err := New(t.Context(), Config{Transport: tr, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	return c, tr, lb, err
}

// isOp reports whether a V4 request or reply packet is of op.
func isOp(p []byte, op hgfsproto.Op) bool {
	return len(p) >= hgfsproto.HeaderSize && hgfsproto.IsV4(p) && binary.LittleEndian.Uint32(p[20:]) == uint32(op)
}

// TestClientRejectsForeignReplies: a reply with another request's id, or
// in the other framing, is malformed, for the session request and for
// any operation.
func TestClientRejectsForeignReplies(t *testing.T) {
	wrongID := func(req, reply []byte) ([]byte, error) {
		if len(reply) >= 20 && hgfsproto.IsV4(reply) {
			binary.LittleEndian.PutUint32(reply[16:], binary.LittleEndian.Uint32(reply[16:])+1000)
		}
		return reply, nil
	}
	if _, _, _, err := newHooked(t, func(req, reply []byte) ([]byte, error) {
		if isOp(req, hgfsproto.OpCreateSessionV4) {
			return wrongID(req, reply)
		}
		return reply, nil
	}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("session reply with a foreign id: %v", err)
	}
	c, tr, _, err := newHooked(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.hook = wrongID
	if _, _, err := c.Getattr(t.Context(), "s"); !errors.Is(err, ErrMalformed) {
		t.Errorf("reply with a foreign id: %v", err)
	}
	tr.hook = func(req, reply []byte) ([]byte, error) {
		// The right id and a well-formed getattr reply, in legacy
		// framing, to a V4 request.
		return hgfsproto.GetattrReply{}.Append(hgfsproto.AppendLegacyHeader(nil, binary.LittleEndian.Uint32(req[16:]), 0)), nil
	}
	if _, _, err := c.Getattr(t.Context(), "s"); !errors.Is(err, ErrMalformed) {
		t.Errorf("legacy reply to a V4 request: %v", err)
	}
}

// TestClientStatsCountFailures: an operation the host refuses counts as
// an error, one it carries out does not, and neither does the session.
func TestClientStatsCountFailures(t *testing.T) {
	c, _, _, err := newHooked(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Getattr(t.Context(), "s")
	c.Getattr(t.Context(), "s")
	c.Getattr(t.Context(), "s/missing")
	for _, st := range c.Stats() {
		switch st.Op {
		case hgfsproto.OpGetattrV3.String():
			if st.Count != 3 || st.Errors != 1 {
				t.Errorf("getattr: %+v, want 3 calls, 1 error", st)
			}
		case hgfsproto.OpCreateSessionV4.String():
			if st.Errors != 0 {
				t.Errorf("session: %+v, want no error", st)
			}
		}
	}
}

// TestClientAcceptsPacketMax: a host offering exactly the classic packet
// size gets it, not the legacy fallback.
func TestClientAcceptsPacketMax(t *testing.T) {
	c, _, _, err := newHooked(t, func(req, reply []byte) ([]byte, error) {
		if isOp(reply, hgfsproto.OpCreateSessionV4) && len(reply) >= hgfsproto.HeaderSize+16 {
			binary.LittleEndian.PutUint32(reply[hgfsproto.HeaderSize+12:], hgfsproto.PacketMax)
		}
		return reply, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sizes().MaxPacket; got != hgfsproto.PacketMax {
		t.Errorf("MaxPacket %d, want %d", got, hgfsproto.PacketMax)
	}
}

// TestSizesFit: reads are the packet less the header budget, within
// [IOMax, LargeIOMax]; a write request of MaxWrite bytes, "f " and header
// included, fits the VMX's message cap exactly (unless the read size is
// smaller), so one byte more would not.
func TestSizesFit(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		head := hgfsproto.HeaderSize
		if legacy {
			head = hgfsproto.LegacyHeaderSize
		}
		for mp, read := range map[uint32]int{hgfsproto.PacketMax: hgfsproto.IOMax, 20000: 20000 - hgfsproto.HeaderSizeMax, hgfsproto.LargePacketMax: hgfsproto.LargeIOMax} {
			s := sizesFor(mp, legacy)
			if s.MaxRead != read || s.MaxPacket != mp {
				t.Errorf("sizesFor(%d, %v) = %+v, want read %d", mp, legacy, s, read)
			}
			if s.MaxWrite > s.MaxRead {
				t.Errorf("sizesFor(%d, %v): write %d", mp, legacy, s.MaxWrite)
			}
			total := 2 + head + hgfsproto.WriteRequestHead + s.MaxWrite
			if total > hgfsproto.MaxGuestMessage || (s.MaxWrite < s.MaxRead && total < hgfsproto.MaxGuestMessage) {
				t.Errorf("sizesFor(%d, %v): a %d-byte write is a %d-byte message (cap %d)", mp, legacy, s.MaxWrite, total, hgfsproto.MaxGuestMessage)
			}
		}
	}
}

// TestClientLogsOutageOnce: the first transport failure of an outage is
// logged, later ones are not, and the recovery is.
func TestClientLogsOutageOnce(t *testing.T) {
	c, tr, lb, err := newHooked(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.hook = func(req, reply []byte) ([]byte, error) { return nil, errors.New("reset") }
	c.Getattr(t.Context(), "s")
	c.Getattr(t.Context(), "s")
	tr.hook = nil
	if _, _, err := c.Getattr(t.Context(), "s"); err != nil {
		t.Fatal(err)
	}
	logs := lb.String()
	if n := strings.Count(logs, "cannot reach the host"); n != 1 || !strings.Contains(logs, "the host answers again") {
		t.Errorf("%d outage lines:\n%s", n, logs)
	}
}

// TestWriteRequestsEven: a write goes out in as few WRITE_V3 requests as
// the VMX's message cap allows, of equal size: a kernel write of the
// largest read size (520,192 bytes) in 8, a 1 MiB write in 17 (page-sized
// 61,440-byte chunks would take 9 and 18), and the data arrives intact.
func TestWriteRequestsEven(t *testing.T) {
	dir := t.TempDir()
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, tr, _ := newClient(t, h)
	ctx := t.Context()
	writes := func() uint64 {
		for _, s := range c.Stats() {
			if s.Op == hgfsproto.OpWriteV3.String() {
				return s.Count
			}
		}
		return 0
	}
	f, err := c.Open(ctx, "s/even", OpenFlags{Mode: hgfsproto.OpenModeWriteOnly, Create: hgfsproto.OpenFlagCreateSafe, Perm: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	var want []byte
	off := int64(0)
	for _, tc := range []struct{ size, requests int }{{hgfsproto.LargeIOMax, 8}, {1 << 20, 17}, {8192, 1}, {c.Sizes().MaxWrite + 1, 2}} {
		data := make([]byte, tc.size)
		for i := range data {
			data[i] = byte(i*7 + tc.size)
		}
		before := writes()
		n, err := f.WriteAt(ctx, data, off)
		if err != nil || n != tc.size {
			t.Fatalf("WriteAt(%d bytes) = %d, %v", tc.size, n, err)
		}
		if got := writes() - before; got != uint64(tc.requests) {
			t.Errorf("%d bytes went out in %d WRITE_V3 requests, want %d", tc.size, got, tc.requests)
		}
		want = append(want, data...)
		off += int64(tc.size)
	}
	if tr.maxSent > hgfsproto.MaxGuestMessage {
		t.Errorf("a message of %d bytes", tr.maxSent)
	}
	got, err := os.ReadFile(filepath.Join(dir, "even"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("host file: %d bytes, %v; want the %d bytes written", len(got), err, len(want))
	}
}
