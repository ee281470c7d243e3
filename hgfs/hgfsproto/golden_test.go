package hgfsproto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// goldenPath is the capture of Debian's vmhgfs-fuse 12.2.0 and
// vmware-hgfsclient under the trap (internal/e2e TestHGFSPeerGolden,
// testdata/peer/README.md).
const goldenPath = "../../testdata/peer/vmhgfs-fuse-12.2.0.jsonl"

// goldenPair is one "f" RPC of the capture: the HGFS packets without the
// "f " and "1 " prefixes.
type goldenPair struct {
	req, reply []byte
}

func goldenPairs(t testing.TB) []goldenPair {
	t.Helper()
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenPair
	var pending []byte
	isF := false
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r struct{ Ch, From, Msg, Hex string }
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		msg := []byte(r.Msg)
		if r.Hex != "" {
			if msg, err = hex.DecodeString(r.Hex); err != nil {
				t.Fatal(err)
			}
		}
		if r.From == "guest" {
			pending, isF = bytes.CutPrefix(msg, []byte("f "))
			continue
		}
		if !isF {
			continue
		}
		reply, ok := bytes.CutPrefix(msg, []byte("1 "))
		if !ok {
			t.Fatalf("reply %q to an f request", msg)
		}
		out = append(out, goldenPair{req: pending, reply: reply})
		isF = false
	}
	if len(out) < 40 {
		t.Fatalf("only %d HGFS round trips in %s", len(out), goldenPath)
	}
	return out
}

// reencode decodes an op payload from the capture and encodes it again
// with this package's encoders; it returns nil for ops it has no encoder
// for.
func reencode(t *testing.T, op Op, kind Kind, id uint32, p []byte) []byte {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v: decoding %x: %v", op, p, err)
		}
	}
	switch op {
	case OpCreateSessionV4:
		r, err := DecodeCreateSessionRequest(p)
		check(err)
		return r.Append(nil)
	case OpDestroySessionV4:
		return AppendReserved(nil)
	case OpOpenV3:
		r, err := DecodeOpenRequest(p)
		check(err)
		return r.Append(nil)
	case OpReadV3:
		r, err := DecodeReadRequest(p)
		check(err)
		return r.Append(nil)
	case OpWriteV3:
		r, err := DecodeWriteRequest(p)
		check(err)
		return r.Append(nil)
	case OpCloseV3, OpSearchCloseV3:
		h, err := DecodeHandleRequest(p)
		check(err)
		return AppendHandleRequest(nil, h)
	case OpSearchOpenV3, OpQueryVolumeInfoV3:
		n, err := DecodeNameRequest(p)
		check(err)
		return AppendNameRequest(nil, n)
	case OpSearchReadV3:
		r, err := DecodeSearchReadRequest(p)
		check(err)
		return r.Append(nil)
	case OpGetattrV3, OpDeleteFileV3, OpDeleteDirV3:
		h, n, err := DecodeHintsRequest(p)
		check(err)
		return AppendHintsRequest(nil, h, n)
	case OpSetattrV3:
		r, err := DecodeSetattrRequest(p)
		check(err)
		return r.Append(nil)
	case OpCreateDirV3:
		r, err := DecodeCreateDirRequest(p)
		check(err)
		return r.Append(nil)
	case OpRenameV3:
		r, err := DecodeRenameRequest(p)
		check(err)
		return r.Append(nil)
	case OpCreateSymlinkV3:
		r, err := DecodeSymlinkRequest(p)
		check(err)
		return r.Append(nil)
	case OpSearchOpen:
		n, err := DecodeV1SearchOpen(p)
		check(err)
		return AppendV1SearchOpen(nil, id, n)
	case OpSearchRead:
		s, off, err := DecodeV1SearchRead(p)
		check(err)
		return AppendV1SearchRead(nil, id, s, off)
	case OpSearchClose:
		h, err := DecodeV1Handle(p)
		check(err)
		return AppendV1Handle(nil, id, uint32(OpSearchClose), h)
	}
	return nil
}

// TestGoldenPeerRequests: every request Debian's vmhgfs-fuse and
// vmware-hgfsclient sent parses, and decoding and encoding it again with
// this package gives the same bytes, header included.
func TestGoldenPeerRequests(t *testing.T) {
	seen := map[Op]int{}
	for _, g := range goldenPairs(t) {
		if len(g.req) == 0 {
			continue // the ping
		}
		req, err := ParseRequest(g.req)
		if err != nil {
			t.Fatalf("request %x: %v", g.req, err)
		}
		seen[req.Op]++
		got := reencode(t, req.Op, req.Kind, req.ID, req.Payload)
		if got == nil {
			t.Errorf("%v: no encoder", req.Op)
			continue
		}
		want := req.Payload
		if req.Kind == KindV1 {
			// V1 structs embed the legacy header: the whole packet.
			want = g.req
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%v: re-encoded\n%x\nwant\n%x", req.Op, got, want)
		}
		if req.Kind == KindV4 {
			h := req.Header
			if pkt := AppendRequestV4(nil, h.RequestID, h.Op, h.SessionID, req.Payload); !bytes.Equal(pkt, g.req) {
				t.Errorf("%v: header re-encoded\n%x\nwant\n%x", req.Op, pkt[:HeaderSize], g.req[:HeaderSize])
			}
		}
	}
	for _, op := range []Op{OpCreateSessionV4, OpGetattrV3, OpSearchReadV3, OpOpenV3, OpReadV3, OpWriteV3, OpSetattrV3, OpRenameV3, OpCreateSymlinkV3, OpSearchRead} {
		if seen[op] == 0 {
			t.Errorf("the capture has no %v", op)
		}
	}
}

// TestGoldenPeerReplies: every reply of the capture (vmxsim's answers to
// Debian's client) decodes with the client-side decoders, with the
// request's id and a status.
func TestGoldenPeerReplies(t *testing.T) {
	for _, g := range goldenPairs(t) {
		req, _ := ParseRequest(g.req)
		if len(g.req) == 0 {
			if lh, err := ParseLegacyHeader(g.reply); err != nil || Status(lh.Word) != StatusProtocolError {
				t.Errorf("ping reply %x: %v", g.reply, err)
			}
			continue
		}
		r, err := ParseReply(g.reply)
		if err != nil {
			t.Fatalf("%v reply %x: %v", req.Op, g.reply, err)
		}
		if r.ID != req.ID || r.V4 != (req.Kind == KindV4) {
			t.Errorf("%v: reply id %d v4 %v for request %d kind %v", req.Op, r.ID, r.V4, req.ID, req.Kind)
		}
		if r.Status != StatusSuccess {
			if r.Status != StatusNoSuchFileOrDir {
				t.Errorf("%v: status %v", req.Op, r.Status)
			}
			continue
		}
		p := r.Payload
		switch req.Op {
		case OpCreateSessionV4:
			cs, err := DecodeCreateSessionReply(p)
			if err == nil && (cs.MaxPacketSize != LargePacketMax || cs.Flags&SessionMaxPacketSizeValid == 0) {
				t.Errorf("session reply %+v", cs)
			}
		case OpOpenV3:
			_, err = DecodeOpenReply(p)
		case OpReadV3:
			rr, _ := DecodeReadRequest(req.Payload)
			_, err = DecodeReadReply(p, rr.Size)
		case OpWriteV3:
			wr, _ := DecodeWriteRequest(req.Payload)
			_, err = DecodeWriteReply(p, uint32(len(wr.Data)))
		case OpSearchOpenV3:
			_, err = DecodeHandleReply(p)
		case OpSearchReadV3:
			var es []DirEntry
			var done bool
			es, done, err = DecodeSearchReadReply(p)
			if err == nil && !done && len(es) != 1 {
				t.Errorf("SEARCH_READ_V3 reply with %d entries", len(es))
			}
		case OpGetattrV3:
			_, err = DecodeGetattrReply(p)
		case OpQueryVolumeInfoV3:
			_, _, err = DecodeVolumeReply(p)
		case OpSearchRead:
			_, _, err = DecodeV1SearchReadReply(g.reply)
		}
		if err != nil {
			t.Errorf("%v reply %x: %v", req.Op, p, err)
		}
	}
}
