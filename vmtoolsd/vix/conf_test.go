package vix

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

func parseConf(t *testing.T, text string) *toolsconf.File {
	t.Helper()
	f, probs := toolsconf.Parse([]byte(text))
	if len(probs) > 0 {
		t.Fatalf("tools.conf %q: %v", text, probs)
	}
	return f
}

// [guestoperations] disabled and <API>.disabled refuse with 20005 before
// any login; GetToolsState always answers; the switches are read at
// every request, and the *_ENABLED properties carry the disabled flag.
func TestConfSwitches(t *testing.T) {
	s := newService(t)
	user := currentUser(t)
	conf := parseConf(t, "")
	s.Conf = func() *toolsconf.File { return conf }
	validate := request(t, vixproto.OpValidateCredentials, 1, nil, user, "right")
	ls := request(t, vixproto.OpListFiles, 1, (&vixproto.ListFiles{Path: t.TempDir()}).Encode(), user, "right")
	if e, _ := relay(t, s, validate); e != 0 {
		t.Fatalf("validate, enabled: %v", e)
	}
	conf = parseConf(t, "[guestoperations]\nValidateCredentialsInGuest.disabled=true\n")
	if e, _ := relay(t, s, validate); e != vixproto.ErrOperationDisabled {
		t.Errorf("validate, API disabled: %v", e)
	}
	if e, _ := relay(t, s, ls); e != 0 {
		t.Errorf("ListFiles with another API disabled: %v", e)
	}
	// Disabled is refused before the password is checked.
	if e, _ := relay(t, s, request(t, vixproto.OpValidateCredentials, 1, nil, user, "wrong")); e != vixproto.ErrOperationDisabled {
		t.Errorf("validate, disabled, wrong password: %v", e)
	}
	props := func() map[int32]bool {
		e, p := relay(t, s, request(t, vixproto.OpGetToolsState, 0, nil, "", ""))
		if e != 0 {
			t.Fatalf("GetToolsState: %v", e)
		}
		return boolProps(t, p)
	}
	if pr := props(); !pr[4544] || pr[4540] {
		t.Errorf("properties with ValidateCredentials disabled: %v", pr)
	}
	conf = parseConf(t, "[guestoperations]\ndisabled=true\nValidateCredentialsInGuest.disabled=false\n")
	for name, msg := range map[string][]byte{"validate": validate, "ls": ls, "unknown op": request(t, 9999, 1, nil, user, "right")} {
		if e, _ := relay(t, s, msg); e != vixproto.ErrOperationDisabled {
			t.Errorf("%s, all disabled: %v", name, e)
		}
	}
	if pr := props(); !pr[4540] || !pr[4544] || !pr[4568] {
		t.Errorf("properties with all disabled: %v", pr)
	}
	conf = parseConf(t, "[guestoperations]\ndisabled=false\n")
	if e, _ := relay(t, s, validate); e != 0 {
		t.Errorf("validate, enabled again: %v", e)
	}
}

func boolProps(t *testing.T, b64 string) map[int32]bool {
	t.Helper()
	raw, err := decodeB64(b64)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := vixproto.ParseProperties(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]bool{}
	for _, p := range ps {
		if p.Type == vixproto.PropBool {
			out[p.ID] = p.Bool
		}
	}
	return out
}

// A process list over one reply is sent in chunks under a key, as
// open-vm-tools sends it; the chunks add up to the whole list; the key
// is another user's to no one, and is gone after the last chunk.
func TestListProcessesChunked(t *testing.T) {
	s := newService(t)
	user := currentUser(t)
	long := strings.Repeat("x", 1000)
	for i := range 200 {
		s.procs = append(s.procs, &proc{Process: vixproto.Process{Pid: uint64(1<<40 + i), Cmd: "c", CmdLine: long, User: user, Start: 1}})
	}
	list := func(key, off uint32) (vixproto.Error, string) {
		return relay(t, s, request(t, vixproto.OpListProcessesEx, 1, (&vixproto.ListProcesses{Key: key, Offset: off}).Encode(), user, "right"))
	}
	e, p := list(0, 0)
	if e != 0 || len(p) > vixproto.MaxReplyPayload {
		t.Fatalf("first chunk: %v, %d bytes", e, len(p))
	}
	c, err := vixproto.ParseProcChunk(p)
	if err != nil || !c.Chunked || c.Key == 0 || c.Left == 0 || int64(len(c.Data))+c.Left != c.Total {
		t.Fatalf("first chunk %+v %v (%.100q)", c, err, p)
	}
	if want := vixproto.MaxResultBuffer - vixproto.ProcChunkFirstHeader; len(c.Data) != want {
		t.Errorf("first chunk carries %d bytes of data, want %d", len(c.Data), want)
	}
	// Another user's key is refused (the fake helper admits only the
	// current user, so ask as it with a key that was never given).
	if e, _ := list(c.Key+100, 0); e != vixproto.ErrFail {
		t.Errorf("unknown key: %v", e)
	}
	if e, _ := list(c.Key, uint32(c.Total+1)); e != vixproto.ErrFail {
		t.Errorf("offset past the end: %v", e)
	}
	key, data, total := c.Key, c.Data, c.Total
	for c.Left > 0 {
		e, p = list(key, uint32(len(data)))
		if e != 0 || len(p) > vixproto.MaxReplyPayload {
			t.Fatalf("chunk at %d: %v, %d bytes", len(data), e, len(p))
		}
		if c, err = vixproto.ParseProcChunk(p); err != nil || !c.Chunked || c.Key != 0 || !strings.HasPrefix(p, "<leftToSend>") {
			t.Fatalf("later chunk %+v %v", c, err)
		}
		if want := vixproto.MaxResultBuffer - vixproto.ProcChunkLaterHeader; c.Left > 0 && len(c.Data) != want {
			t.Errorf("later chunk carries %d bytes of data, want %d", len(c.Data), want)
		}
		data += c.Data
	}
	// totalSize counts the list's NUL, which the last reply cannot carry.
	if int64(len(data)) != total-1 {
		t.Fatalf("chunks add up to %d bytes, total %d", len(data), total)
	}
	ps := vixproto.ParseProcesses(data)
	n := 0
	for _, pr := range ps {
		if pr.Pid >= 1<<40 && pr.CmdLine == long {
			n++
		}
	}
	if n != 200 {
		t.Errorf("%d of the 200 long entries in the reassembled list", n)
	}
	if e, _ := list(key, 0); e != vixproto.ErrFail {
		t.Errorf("key after the last chunk: %v", e)
	}
	// A list of a few pids is not chunked.
	e, p = relay(t, s, request(t, vixproto.OpListProcessesEx, 1, (&vixproto.ListProcesses{Pids: []uint64{1 << 40}}).Encode(), user, "right"))
	if c, _ := vixproto.ParseProcChunk(p); e != 0 || c.Chunked || len(vixproto.ParseProcesses(p)) != 1 {
		t.Errorf("one pid: %v %q", e, p)
	}
}

// Lists of other users are not served; keys are bounded.
func TestProcListsBounds(t *testing.T) {
	var l procLists
	now := testNow()
	k := l.put("a", []byte("0123456789"), now)
	if e, _, _ := l.next(k, 0, "b", now); e != vixproto.ErrFail {
		t.Errorf("another user's list: %v", e)
	}
	if e, _, _ := l.next(k, 0, "a", now.Add(procListRetention+1)); e != vixproto.ErrFail {
		t.Errorf("expired list: %v", e)
	}
	for i := range maxProcLists + 5 {
		l.put("u"+strconv.Itoa(i), []byte("x"), now)
	}
	if len(l.m) > maxProcLists {
		t.Errorf("%d lists kept", len(l.m))
	}
	if e, _, p := l.next(l.lastKey, 0, "u"+strconv.Itoa(maxProcLists+4), now); e != 0 || string(p) != "<key>"+strconv.Itoa(int(l.lastKey))+"</key><totalSize>1</totalSize><leftToSend>0</leftToSend>x" {
		t.Errorf("last list: %v %q", e, p)
	}
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func testNow() time.Time { return time.Unix(1_700_000_000, 0) }
