package vixproto

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// The credential block of the worked example: user root, password
// secret, type 4.
func TestNamePasswordGolden(t *testing.T) {
	got := NamePasswordCred("root", []byte("secret"))
	want := append([]byte{4, 0, 0, 0, 6, 0, 0, 0}, "cm9vdABzZWNyZXQA\x00"...)
	if !bytes.Equal(got, want) || len(got) != 25 {
		t.Fatalf("cred = %q, want %q", got, want)
	}
	c, err := DecodeNamePassword(got)
	if err != nil || c.Name != "root" || string(c.Password) != "secret" {
		t.Fatalf("decode = %+v %v", c, err)
	}
	c.Wipe()
	// Escaped bytes \1..\7 are accepted; any other escape is not.
	esc := append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, "cm9vdABzZWNyZXQA\\4\x00"...)
	if _, err := DecodeNamePassword(esc); err != ErrInvalidLoginCredentials {
		t.Errorf("base64 with a space: %v", err)
	}
	if _, err := DecodeNamePassword(append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, "cm9v\\9\x00"...)); err != ErrInvalidLoginCredentials {
		t.Errorf("bad escape: %v", err)
	}
}

// A ValidateCredentials (192) request of root/secret, type 4, as
// the header layout gives it.
func TestValidateCredentialsGolden(t *testing.T) {
	want := testutil.ReadHex(t, "validate-credentials-request.hex")
	got, err := NewRequest(OpValidateCredentials, 0, 0, CredNamePasswordObfusc, nil, NamePasswordCred("root", []byte("secret")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("request\n got %x\nwant %x", got, want)
	}
	r, err := Decode(want)
	if err != nil || r.OpCode != OpValidateCredentials || r.CredType != CredNamePasswordObfusc || len(r.Cred) != 25 || len(r.Body) != 0 {
		t.Fatalf("decode = %+v %v", r, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, _ := NewRequest(OpDeleteFileEx, 0, 0, CredNamePassword, (&FileOp{Op: OpDeleteFileEx, Path: "/tmp/x"}).Encode(), NamePasswordCred("u", []byte("p")))
	if _, err := Decode(good); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"truncated":    good[:len(good)-1],
		"extra byte":   append(append([]byte(nil), good...), 0),
		"short":        good[:20],
		"bad magic":    mut(func(b []byte) []byte { b[0] ^= 1; return b }),
		"bad version":  mut(func(b []byte) []byte { b[4] = 4; return b }),
		"header len":   mut(func(b []byte) []byte { b[10] = 50; return b }),
		"body len":     mut(func(b []byte) []byte { b[14]++; return b }),
		"huge cred":    mut(func(b []byte) []byte { b[21] = 0xff; return b }),
		"auth data v1": mut(func(b []byte) []byte { b[27] |= RequestIncludesAuthDataV1; return b }),
		"oversized":    append(good, make([]byte, MaxRequestSize)...),
	}
	for name, b := range cases {
		if _, err := Decode(b); err != ErrInvalidMessageHeader {
			t.Errorf("%s: %v, want %v", name, err, ErrInvalidMessageHeader)
		}
	}
}

func TestBodiesRoundTrip(t *testing.T) {
	sp := &StartProgram{ProgramPath: "/usr/bin/id", Arguments: "-u", Env: []string{"A=1", "B=2"}}
	if got, err := ParseStartProgram(sp.Encode()); err != nil || got.ProgramPath != sp.ProgramPath || got.Arguments != "-u" || len(got.Env) != 2 || got.WorkingDir != "" {
		t.Errorf("start program: %+v %v", got, err)
	}
	if _, err := ParseStartProgram((&StartProgram{ProgramPath: "/bin/x", Env: []string{"NOEQ"}}).Encode()); err != ErrInvalidArg {
		t.Errorf("env without '=': %v", err)
	}
	lp := &ListProcesses{Pids: []uint64{1, 2, 3}}
	if got, err := ParseListProcesses(lp.Encode()); err != nil || len(got.Pids) != 3 || got.Pids[2] != 3 {
		t.Errorf("list processes: %+v %v", got, err)
	}
	bad := lp.Encode()
	bad[8] = 200 // numPids beyond the body
	if _, err := ParseListProcesses(bad); err != ErrInvalidMessageBody {
		t.Errorf("numPids beyond the body: %v", err)
	}
	lf := &ListFiles{Path: "/etc", Pattern: "pass", MaxResults: 50}
	if got, err := ParseListFiles(lf.Encode()); err != nil || *got != *lf {
		t.Errorf("list files: %+v %v", got, err)
	}
	ct := &CreateTemp{Prefix: "a", Suffix: "b", Dir: "/tmp"}
	if got, err := ParseCreateTemp(ct.Encode()); err != nil || *got != *ct {
		t.Errorf("create temp: %+v %v", got, err)
	}
	rn := &Rename{Old: "/a", New: "/b", Overwrite: true}
	if got, err := ParseRename(rn.Encode()); err != nil || *got != *rn {
		t.Errorf("rename: %+v %v", got, err)
	}
	sa := &SetAttrs{Options: AttrSetUnixPerms, Perms: 0o600, Path: "/x"}
	if got, err := ParseSetAttrs(sa.Encode()); err != nil || *got != *sa {
		t.Errorf("set attrs: %+v %v", got, err)
	}
	for _, op := range []uint32{OpDeleteFileEx, OpDeleteDirectoryEx, OpCreateDirectoryEx, OpInitiateTransferTo} {
		fo := &FileOp{Op: op, Path: "/d", Flag: op != OpDeleteFileEx}
		if got, err := ParseFileOp(op, fo.Encode()); err != nil || *got != *fo {
			t.Errorf("file op %d: %+v %v", op, got, err)
		}
		b := fo.Encode()
		if _, err := ParseFileOp(op, b[:len(b)-1]); err != ErrInvalidMessageBody {
			t.Errorf("file op %d without NUL: %v", op, err)
		}
	}
	// A path with invalid UTF-8.
	fo := (&FileOp{Op: OpDeleteFileEx, Path: "/\xff"}).Encode()
	if _, err := ParseFileOp(OpDeleteFileEx, fo); err != ErrInvalidUTF8 {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestReplyFormat(t *testing.T) {
	if got := string(Reply(ErrInvalidLoginCredentials, 0, nil)); got != "3050 0 \x00" {
		t.Errorf("reply = %q", got)
	}
	e, a, p, bin, err := ParseReply([]byte("4 2 \x00"))
	if err != nil || e != ErrFileNotFound || a != 2 || len(p) != 0 || bin {
		t.Errorf("parse = %v %v %q %v %v", e, a, p, bin, err)
	}
	e, a, p, bin, err = ParseReply(BinaryReply(OK, 0, []byte{0, 1, 2}))
	if err != nil || e != OK || a != 0 || !bytes.Equal(p, []byte{0, 1, 2}) || !bin {
		t.Errorf("binary = %v %v %q %v %v", e, a, p, bin, err)
	}
	if got := EscapeXML(`a<b>"c"%&'`); got != "a%3Cb%3E%22c%22%25%26%27" {
		t.Errorf("escape = %q", got)
	}
	if got := UnescapeXML(EscapeXML(`<x%y>`)); got != `<x%y>` {
		t.Errorf("unescape = %q", got)
	}
	p1 := Process{Cmd: "id", CmdLine: `"/usr/bin/id" -u`, User: "u", Pid: 42, Start: 100, End: 101, ExitCode: 3}
	got := ParseProcesses(string(AppendProcess(nil, &p1)))
	if len(got) != 1 || got[0] != p1 {
		t.Errorf("process = %+v", got)
	}
	f := FileInfo{Name: "a<b", Type: FileTypeDir, Size: 0, MTime: 5, ATime: 6, UID: 1, GID: 2, Mode: 0o40755}
	lr := ParseListFilesResult("0 <rem>3</rem>" + string(AppendFileInfo(nil, &f)))
	if lr.Truncated || lr.Remaining != 3 || len(lr.Files) != 1 || lr.Files[0] != f {
		t.Errorf("list files = %+v", lr)
	}
	props := AppendProperty(AppendProperty(nil, Property{ID: 4500, Type: PropString, Str: "12.2.0"}), Property{ID: 4540, Type: PropBool, Bool: true})
	pl, err := ParseProperties(props)
	if err != nil || len(pl) != 2 || pl[0].Str != "12.2.0" || !pl[1].Bool {
		t.Errorf("properties = %+v %v", pl, err)
	}
}

func TestSplitRelayed(t *testing.T) {
	name, msg, err := SplitRelayed([]byte(` "req\"1" junk` + "\x00\x01\x02"))
	if err != nil || name != `req\"1` || !bytes.Equal(msg, []byte{1, 2}) {
		t.Errorf("split = %q %q %v", name, msg, err)
	}
	for _, bad := range []string{"", "no quote\x00", `"unterminated`, `"name" no nul`} {
		if _, _, err := SplitRelayed([]byte(bad)); err != ErrInvalidMessageHeader {
			t.Errorf("%q: %v", bad, err)
		}
	}
	full := Relayed("reqname", []byte{9})
	if string(full) != "Vix_1_Relayed_Command \"reqname\"\x00\x09" {
		t.Errorf("relayed = %q", full)
	}
}

// decodeAll runs every decoder a guest applies to host bytes.
func decodeAll(b []byte) {
	if _, msg, err := SplitRelayed(b); err == nil {
		b = msg
	}
	r, err := Decode(b)
	if err != nil {
		return
	}
	if c, err := DecodeNamePassword(r.Cred); err == nil {
		c.Wipe()
	}
	ParseStartProgram(r.Body)
	ParseListProcesses(r.Body)
	ParseKillProcess(r.Body)
	ParseReadEnv(r.Body)
	ParseListFiles(r.Body)
	ParseRename(r.Body)
	ParseCreateTemp(r.Body)
	ParseSetAttrs(r.Body)
	for _, op := range []uint32{OpDeleteFileEx, OpDeleteDirectoryEx, OpCreateDirectoryEx, OpInitiateTransferTo} {
		ParseFileOp(op, r.Body)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, name := range []string{"validate-credentials-request.hex", "start-program-request.hex"} {
		f.Add(testutil.ReadHex(f, name))
	}
	reqs, _ := peerVIX(f)
	for _, r := range reqs {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeAll(b) })
}

func FuzzBody(f *testing.F) {
	f.Add((&StartProgram{ProgramPath: "/bin/true", Env: []string{"A=1"}}).Encode())
	f.Add((&ListProcesses{Pids: []uint64{1}}).Encode())
	f.Add((&ListFiles{Path: "/", Pattern: "x"}).Encode())
	f.Add((&CreateTemp{Dir: "/tmp"}).Encode())
	f.Add([]byte("cm9vdABzZWNyZXQA\x00"))
	f.Add((&HgfsPacket{Packet: []byte("\x01\xff\x00\x00")}).Encode())
	f.Fuzz(func(t *testing.T, body []byte) {
		if p, err := ParseHgfsPacket(body); err == nil && len(p.Packet) != len(body)-8 {
			t.Fatalf("hgfs packet of %d bytes in a %d-byte body", len(p.Packet), len(body))
		}
		ParseStartProgram(body)
		ParseListProcesses(body)
		ParseKillProcess(body)
		ParseReadEnv(body)
		ParseListFiles(body)
		ParseRename(body)
		ParseCreateTemp(body)
		ParseSetAttrs(body)
		for _, op := range []uint32{OpDeleteFileEx, OpDeleteDirectoryEx, OpCreateDirectoryEx, OpInitiateTransferTo} {
			ParseFileOp(op, body)
		}
		if c, err := DecodeNamePassword(body); err == nil {
			c.Wipe()
		}
		for _, op := range []uint32{OpStartProgram, OpListProcessesEx, OpTerminateProcess, OpReadEnvVariables, OpListFiles,
			OpMoveFileEx, OpCreateTempFileEx, OpSetFileAttributes, OpDeleteFileEx, OpHgfsSendPacket, 9999} {
			if err := CheckBody(op, body); err != nil {
				if _, ok := err.(Error); !ok {
					t.Fatalf("CheckBody(%d): %T %v is not a VIX error", op, err, err)
				}
			}
		}
	})
}

func FuzzReply(f *testing.F) {
	f.Add([]byte("0 0 0 <rem>0</rem><fxi><Name>a</Name></fxi>\x00"))
	f.Add([]byte("0 0 <proc><cmd>a</cmd><name>b</name><pid>1</pid></proc>\x00"))
	f.Add(BinaryReply(0, 0, []byte{1}))
	_, replies := peerVIX(f)
	for _, r := range replies {
		f.Add(bytes.TrimPrefix(r, []byte("OK ")))
	}
	f.Add(Reply(0, 0, AppendProcChunk(nil, 3, 90000, 0, 89000, []byte("<proc><cmd>a</cmd>"))))
	f.Add(Reply(0, 0, AppendProcChunk(nil, 3, 90000, 1000, 0, []byte("</proc>"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, p, _, err := ParseReply(b); err == nil {
			ParseProcesses(string(p))
			if c, err := ParseProcChunk(string(p)); err == nil && c.Chunked && !strings.HasSuffix(string(p), c.Data) {
				t.Fatalf("chunk data %q is not the reply's end", c.Data)
			}
			calls := 0
			JoinProcChunks(p, 1<<20, func(uint32, uint32) ([]byte, error) {
				if calls++; calls > 100 {
					t.Fatal("JoinProcChunks does not end")
				}
				return p, nil
			})
			ParseListFilesResult(string(p))
			ParseEnv(string(p))
			ParseProperties(p)
			UnescapeXML(string(p))
		}
	})
}

func TestHgfsPacket(t *testing.T) {
	p := &HgfsPacket{Timeout: 5, Packet: []byte("abc")}
	q, err := ParseHgfsPacket(p.Encode())
	if err != nil || string(q.Packet) != "abc" || q.Timeout != 5 {
		t.Fatalf("%+v %v", q, err)
	}
	for _, b := range [][]byte{nil, (&HgfsPacket{}).Encode(), append(p.Encode(), 0), p.Encode()[:10]} {
		if _, err := ParseHgfsPacket(b); err != ErrInvalidMessageBody {
			t.Errorf("%q: %v", b, err)
		}
	}
}

// peerVIX reads the guest-operations exchanges captured from Debian's
// vmtoolsd (testdata/peer/vix-12.2.0.json, internal/e2e
// TestGuestOpsPeerGolden): each TCLO command with the guest's reply.
func peerVIX(t testing.TB) (reqs, replies [][]byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", "vix-12.2.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct{ Name, Request, Reply, ReplyHex string }
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Cases {
		req, err := hex.DecodeString(c.Request)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		rep := []byte(c.Reply)
		if c.ReplyHex != "" {
			if rep, err = hex.DecodeString(c.ReplyHex); err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
		}
		reqs, replies = append(reqs, req), append(replies, rep)
	}
	return reqs, replies
}

// Every relayed request of the capture decodes, its body with the
// opcode's parser and its credential; re-encoding the decoded request
// gives the same bytes. Every reply parses, and its payload with the
// decoder of its kind.
func TestPeerGoldenVIX(t *testing.T) {
	reqs, replies := peerVIX(t)
	if len(reqs) < 30 {
		t.Fatalf("%d exchanges in the capture", len(reqs))
	}
	relayed := 0
	for i, cmd := range reqs {
		rest, ok := bytes.CutPrefix(cmd, []byte(RelayedCommand))
		if !ok {
			continue
		}
		_, msg, err := SplitRelayed(rest)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		r, err := Decode(msg)
		if err != nil {
			if msg[0] == Magic&0xff {
				t.Fatalf("request %d: %v", i, err)
			}
			continue // the bad-magic case
		}
		relayed++
		c, err := DecodeNamePassword(r.Cred)
		if err != nil || c.Name == "" {
			t.Errorf("request %d: credential %v", i, err)
		}
		again, err := NewRequest(r.OpCode, r.CommonFlags, r.RequestFlags, r.CredType, r.Body, r.Cred)
		if err != nil || !bytes.Equal(again, msg) {
			t.Errorf("request %d (op %d) re-encodes to %x, want %x (%v)", i, r.OpCode, again, msg, err)
		}
		perr := CheckBody(r.OpCode, r.Body)
		if perr != nil {
			t.Errorf("request %d (op %d) body: %v", i, r.OpCode, perr)
		}
	}
	if relayed < 30 {
		t.Errorf("%d relayed requests decoded", relayed)
	}
	kinds := map[string]int{}
	for i, rep := range replies {
		rest, ok := bytes.CutPrefix(rep, []byte("OK "))
		if !ok {
			t.Fatalf("reply %d: %q", i, rep)
		}
		e, _, p, bin, err := ParseReply(rest)
		// Relayed replies end in a NUL; Vix_1_Get_ToolsProperties' does not.
		if err != nil || bin || (rest[len(rest)-1] != 0) != bytes.Equal(reqs[i], []byte(GetToolsProperties)) {
			t.Fatalf("reply %d %q: %v", i, rep, err)
		}
		s := string(p)
		switch {
		case e != OK:
		case strings.HasPrefix(s, "<proc>"):
			if ps := ParseProcesses(s); len(ps) != 1 || ps[0].Pid == 0 || ps[0].User == "" || ps[0].Start == 0 {
				t.Errorf("reply %d: processes %+v", i, ps)
			}
			kinds["proc"]++
		case strings.HasPrefix(s, "0 <rem>"):
			r := ParseListFilesResult(s)
			if strings.Contains(s, "<fxi>") && len(r.Files) == 0 {
				t.Errorf("reply %d: no files in %q", i, s)
			}
			for _, f := range r.Files {
				if f.Name == "" || f.Mode == 0 || f.MTime == 0 {
					t.Errorf("reply %d: file %+v", i, f)
				}
			}
			kinds["files"]++
		case strings.HasPrefix(s, "<ev>"):
			if env := ParseEnv(s); len(env) != 2 {
				t.Errorf("reply %d: env %q", i, env)
			}
			kinds["env"]++
		case len(s) > 100:
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			ps, err := ParseProperties(raw)
			if err != nil || len(ps) < 40 {
				t.Errorf("reply %d: %d properties, %v", i, len(ps), err)
			}
			kinds["properties"]++
		}
	}
	if kinds["proc"] < 2 || kinds["files"] < 5 || kinds["env"] != 1 || kinds["properties"] != 2 {
		t.Errorf("reply kinds decoded: %v", kinds)
	}
}

// A chunked list is joined from its chunks, the NUL totalSize counts
// aside; chunks that do not add up, make no progress or announce too
// much are refused.
func TestJoinProcChunks(t *testing.T) {
	list := strings.Repeat("<proc><pid>1</pid></proc>", 10) + "\x00"
	chunk := func(off, n int) []byte {
		end := min(off+n, len(list))
		return AppendProcChunk(nil, 7, len(list), uint32(off), len(list)-end, []byte(strings.TrimSuffix(list[off:end], "\x00")))
	}
	var asked []uint32
	next := func(key, off uint32) ([]byte, error) {
		if key != 7 {
			t.Fatalf("key %d", key)
		}
		asked = append(asked, off)
		return chunk(int(off), 100), nil
	}
	got, err := JoinProcChunks(chunk(0, 100), 1<<20, next)
	if err != nil || string(got) != strings.TrimSuffix(list, "\x00") || len(asked) != 2 || asked[0] != 100 || asked[1] != 200 {
		t.Fatalf("joined %q %v, asked %v", got, err, asked)
	}
	if got, err := JoinProcChunks([]byte("<proc></proc>"), 1<<20, nil); err != nil || string(got) != "<proc></proc>" {
		t.Errorf("unchunked: %q %v", got, err)
	}
	if _, err := JoinProcChunks(chunk(0, 100), 100, next); err != ErrInvalidMessageBody {
		t.Errorf("over max: %v", err)
	}
	stuck := func(uint32, uint32) ([]byte, error) { return AppendProcChunk(nil, 0, 0, 1, 5, nil), nil }
	if _, err := JoinProcChunks(chunk(0, 100), 1<<20, stuck); err != ErrInvalidMessageBody {
		t.Errorf("no progress: %v", err)
	}
	short := func(key, off uint32) ([]byte, error) { return AppendProcChunk(nil, 0, 0, off, 0, []byte("x")), nil }
	if _, err := JoinProcChunks(chunk(0, 100), 1<<20, short); err != ErrInvalidMessageBody {
		t.Errorf("short: %v", err)
	}
}
