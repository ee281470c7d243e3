package hgfsd

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/hgfswork"
)

// traceRecord is one line of a vmxsim trace (vmxsim serve|run --trace):
// one message as it crossed, as text (msg) or, when binary, as hex.
type traceRecord struct {
	From string `json:"from"`
	Msg  string `json:"msg"`
	Hex  string `json:"hex"`
}

// Bytes returns the message's bytes.
func (r traceRecord) Bytes() ([]byte, error) {
	if r.Hex != "" {
		return hex.DecodeString(r.Hex)
	}
	return []byte(r.Msg), nil
}

// goldenMsgs reads a golden trace of the module's testdata/peer (captured
// from Debian's open-vm-tools under the trap).
func goldenMsgs(t testing.TB, name string) []traceRecord {
	b, err := os.ReadFile("../../testdata/peer/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []traceRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r traceRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestGoldenPeerHGFS replays every HGFS request of the golden capture of
// Debian's vmhgfs-fuse and vmware-hgfsclient (testdata/peer) against a
// fresh server on the share the capture was made on, in order, and
// compares each answer with the captured one. Only what differs between
// two runs on two machines is masked: the session id, times, inode and
// volume numbers, owners, allocation and directory sizes, free space.
func TestGoldenPeerHGFS(t *testing.T) {
	dir := t.TempDir()
	if err := hgfswork.GoldenShare(dir); err != nil {
		t.Fatal(err)
	}
	h := New(Options{Shares: []ShareSpec{{Name: "s", Dir: dir}}})
	var goldenSession, session uint64
	var req []byte
	n := 0
	for _, r := range goldenMsgs(t, "vmhgfs-fuse-12.2.0.jsonl") {
		msg, err := r.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if r.From == "guest" {
			req = nil
			if p, ok := bytes.CutPrefix(msg, []byte("f ")); ok {
				req = bytes.Clone(p)
			}
			continue
		}
		if req == nil {
			continue
		}
		want, ok := bytes.CutPrefix(msg, []byte("1 "))
		if !ok {
			t.Fatalf("captured reply %q", msg)
		}
		// The live session has its own id: rewrite it in requests.
		if hgfsproto.IsV4(req) && len(req) >= hgfsproto.HeaderSize && goldenSession != 0 &&
			binary.LittleEndian.Uint64(req[36:]) == goldenSession {
			binary.LittleEndian.PutUint64(req[36:], session)
		}
		out := h.RPCI(req)
		got, ok := bytes.CutPrefix(out, []byte("1 "))
		if !ok {
			t.Fatalf("reply %q", out)
		}
		pr, _ := hgfsproto.ParseRequest(req)
		if pr.Op == hgfsproto.OpCreateSessionV4 {
			gr, err1 := hgfsproto.ParseReply(want)
			lr, err2 := hgfsproto.ParseReply(got)
			if err1 != nil || err2 != nil {
				t.Fatalf("session replies: %v %v", err1, err2)
			}
			goldenSession, session = gr.Session, lr.Session
		}
		if g, w := normReply(t, pr, got, session), normReply(t, pr, want, goldenSession); g != w {
			t.Errorf("request %d (%v):\ngot  %s\nwant %s", n, pr.Op, g, w)
		}
		n++
	}
	if n < 40 {
		t.Fatalf("only %d HGFS requests replayed", n)
	}
	if st := h.State(); st.Sessions != 0 || st.OpenFiles != 0 {
		t.Errorf("after the replay: %d sessions, %d open files", st.Sessions, st.OpenFiles)
	}
}

// normReply renders a reply with the machine- and run-specific fields
// zeroed.
func normReply(t *testing.T, req hgfsproto.Request, p []byte, session uint64) string {
	t.Helper()
	if len(req.Payload) == 0 && req.Kind != hgfsproto.KindV4 && req.Op == 0 && len(p) == hgfsproto.LegacyHeaderSize {
		return fmt.Sprintf("legacy %x", p)
	}
	r, err := hgfsproto.ParseReply(p)
	if err != nil {
		t.Fatalf("%v reply %x: %v", req.Op, p, err)
	}
	if r.Session == session {
		r.Session = 1
	}
	body := r.Payload
	if r.Status == hgfsproto.StatusSuccess {
		switch req.Op {
		case hgfsproto.OpCreateSessionV4:
			cs, err := hgfsproto.DecodeCreateSessionReply(body)
			if err != nil {
				t.Fatal(err)
			}
			cs.SessionID = 0
			body = cs.Append(nil)
		case hgfsproto.OpGetattrV3:
			g, err := hgfsproto.DecodeGetattrReply(body)
			if err != nil {
				t.Fatal(err)
			}
			g.Attr = normAttr(g.Attr)
			body = g.Append(nil)
		case hgfsproto.OpSearchReadV3:
			es, _, err := hgfsproto.DecodeSearchReadReply(body)
			if err != nil {
				t.Fatal(err)
			}
			for i := range es {
				es[i].Attr = normAttr(es[i].Attr)
			}
			body = hgfsproto.AppendSearchReadReply(nil, es)
		case hgfsproto.OpQueryVolumeInfoV3:
			body = hgfsproto.AppendVolumeReply(nil, 0, 0)
		case hgfsproto.OpSearchRead:
			a, name, err := hgfsproto.DecodeV1SearchReadReply(p)
			if err != nil {
				t.Fatal(err)
			}
			a.CreationTime, a.AccessTime, a.WriteTime, a.ChangeTime = 0, 0, 0, 0
			if a.Type == hgfsproto.FileTypeDirectory {
				a.Size = 0
			}
			return fmt.Sprintf("v1 %v %+v %q", r.Status, a, name)
		}
	}
	return fmt.Sprintf("v4=%v id=%d %v session=%x %x", r.V4, r.ID, r.Status, r.Session, body)
}

func normAttr(a hgfsproto.Attr) hgfsproto.Attr {
	a.CreationTime, a.AccessTime, a.WriteTime, a.ChangeTime = 0, 0, 0, 0
	a.HostFileID, a.VolumeID, a.UserID, a.GroupID, a.AllocationSize = 0, 0, 0, 0, 0
	if a.Type == hgfsproto.FileTypeDirectory {
		a.Size = 0
	}
	return a
}
