package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/govmtools/govmtools/vmxsim"
)

// GoldenVIX is the guest-operations capture from Debian's vmtoolsd (its
// vix plugin), in testdata/peer.
const GoldenVIX = "vix-12.2.0.json"

// vixGolden is the file: the capture's user (a throwaway one, deleted
// since) and every exchange in order.
type vixGolden struct {
	Tools    string       `json:"tools"`
	User     string       `json:"user"`
	Password string       `json:"password"`
	Home     string       `json:"home"`
	UID      string       `json:"uid"`
	GID      string       `json:"gid"`
	Cases    []vixCaseRec `json:"cases"`
}

// vixCaseRec is one exchange: the TCLO command the host sent (hex: it
// holds the binary VIX request) and the guest's reply ("OK " and the VIX
// reply), as text when it is UTF-8, else in hex.
type vixCaseRec struct {
	Name     string `json:"name"`
	Request  string `json:"request"`
	Reply    string `json:"reply,omitempty"`
	ReplyHex string `json:"replyHex,omitempty"`
}

func (r vixCaseRec) request(t testing.TB) []byte {
	b, err := hex.DecodeString(r.Request)
	if err != nil {
		t.Fatalf("%s: %v", r.Name, err)
	}
	return b
}

func (r vixCaseRec) reply(t testing.TB) []byte {
	if r.ReplyHex == "" {
		return []byte(r.Reply)
	}
	b, err := hex.DecodeString(r.ReplyHex)
	if err != nil {
		t.Fatalf("%s: %v", r.Name, err)
	}
	return b
}

// vixVars are the values of one run that a reply may carry.
type vixVars struct {
	user, password, home, uid, gid string
	pids                           map[string]uint64 // by case name
}

// vixCase is one request of the golden scenario; body may use the pids
// of earlier cases. raw, when set, is the whole TCLO command.
type vixCase struct {
	name     string
	op       uint32
	password string // "" means the right one
	body     func(v *vixVars) []byte
	raw      func(v *vixVars) []byte
	// until, when set, repeats the request (up to 15 s) until the reply
	// satisfies it, and records the last.
	until func(reply string) bool
}

// vixGoldenCases is the scenario, run in order against a directory
// $HOME/g holding one file a ("hello\n", 0644) that vixGoldenSetup makes.
func vixGoldenCases() []vixCase {
	file := func(op uint32, rel string, flag bool) func(v *vixVars) []byte {
		return func(v *vixVars) []byte {
			return (&vixproto.FileOp{Op: op, Path: v.home + "/g" + rel, Flag: flag}).Encode()
		}
	}
	rename := func(from, to string) func(v *vixVars) []byte {
		return func(v *vixVars) []byte {
			return (&vixproto.Rename{Old: v.home + "/g" + from, New: v.home + "/g" + to}).Encode()
		}
	}
	ls := func(rel string) func(v *vixVars) []byte {
		return func(v *vixVars) []byte { return (&vixproto.ListFiles{Path: v.home + "/g" + rel}).Encode() }
	}
	lsMax := func(rel string, index, max int32) func(v *vixVars) []byte {
		return func(v *vixVars) []byte {
			return (&vixproto.ListFiles{Path: v.home + "/g" + rel, Index: index, MaxResults: max}).Encode()
		}
	}
	pidsOf := func(name string) func(v *vixVars) []byte {
		return func(v *vixVars) []byte { return (&vixproto.ListProcesses{Pids: []uint64{v.pids[name]}}).Encode() }
	}
	start := func(path, args string) func(v *vixVars) []byte {
		return func(v *vixVars) []byte { return (&vixproto.StartProgram{ProgramPath: path, Arguments: args}).Encode() }
	}
	mktemp := func(v *vixVars) []byte {
		return (&vixproto.CreateTemp{Prefix: "pre", Suffix: "suf", Dir: v.home + "/g"}).Encode()
	}
	none := func(*vixVars) []byte { return nil }
	return []vixCase{
		{name: "ValidateCredentials", op: vixproto.OpValidateCredentials, body: none},
		{name: "ValidateCredentials wrong password", op: vixproto.OpValidateCredentials, password: "wrong", body: none},
		{name: "ListFiles wrong password", op: vixproto.OpListFiles, password: "wrong", body: ls("")},
		{name: "unknown opcode", op: 9999, body: none},
		{name: "GetToolsState (62)", op: vixproto.OpGetToolsState, body: none},
		{name: "Vix_1_Get_ToolsProperties", raw: func(*vixVars) []byte { return []byte(vixproto.GetToolsProperties) }},
		{name: "bad magic", raw: func(v *vixVars) []byte {
			m, _ := vixproto.NewRequest(vixproto.OpValidateCredentials, 0, 0, vixproto.CredNamePassword, nil, vixproto.NamePasswordCred(v.user, []byte(v.password)))
			m[0] ^= 0xff
			return vixproto.Relayed("golden", m)
		}},
		{name: "ListFiles dir", op: vixproto.OpListFiles, body: ls("")},
		{name: "ListFiles dir, max 50", op: vixproto.OpListFiles, body: lsMax("", 0, 50)},
		{name: "ListFiles dir, index 1, max 1", op: vixproto.OpListFiles, body: lsMax("", 1, 1)},
		{name: "ListFiles file", op: vixproto.OpListFiles, body: ls("/a")},
		{name: "ListFiles file, max 50", op: vixproto.OpListFiles, body: lsMax("/a", 0, 50)},
		{name: "ListFiles missing", op: vixproto.OpListFiles, body: ls("/nope")},
		{name: "CreateDirectoryEx", op: vixproto.OpCreateDirectoryEx, body: file(vixproto.OpCreateDirectoryEx, "/d", false)},
		{name: "CreateDirectoryEx existing", op: vixproto.OpCreateDirectoryEx, body: file(vixproto.OpCreateDirectoryEx, "/d", false)},
		{name: "CreateDirectoryEx parents", op: vixproto.OpCreateDirectoryEx, body: file(vixproto.OpCreateDirectoryEx, "/p/q", true)},
		{name: "CreateDirectoryEx no parent", op: vixproto.OpCreateDirectoryEx, body: file(vixproto.OpCreateDirectoryEx, "/x/y", false)},
		{name: "CreateTemporaryFile", op: vixproto.OpCreateTempFileEx, body: mktemp},
		{name: "CreateTemporaryDirectory", op: vixproto.OpCreateTempDirectory, body: mktemp},
		{name: "SetFileAttributes chmod 0640", op: vixproto.OpSetFileAttributes, body: func(v *vixVars) []byte {
			return (&vixproto.SetAttrs{Options: vixproto.AttrSetUnixPerms, Perms: 0o640, Path: v.home + "/g/a"}).Encode()
		}},
		{name: "ListFiles after chmod", op: vixproto.OpListFiles, body: lsMax("/a", 0, 50)},
		{name: "ListFiles dir after mkdir", op: vixproto.OpListFiles, body: lsMax("/d", 0, 50)},
		{name: "MoveFile", op: vixproto.OpMoveFileEx, body: rename("/a", "/a2")},
		{name: "MoveFile missing", op: vixproto.OpMoveFileEx, body: rename("/a", "/a3")},
		{name: "MoveDirectory", op: vixproto.OpMoveDirectory, body: rename("/d", "/d2")},
		{name: "DeleteFileEx", op: vixproto.OpDeleteFileEx, body: file(vixproto.OpDeleteFileEx, "/a2", false)},
		{name: "DeleteFileEx missing", op: vixproto.OpDeleteFileEx, body: file(vixproto.OpDeleteFileEx, "/a2", false)},
		{name: "DeleteFileEx directory", op: vixproto.OpDeleteFileEx, body: file(vixproto.OpDeleteFileEx, "/d2", false)},
		{name: "DeleteDirectoryEx not empty", op: vixproto.OpDeleteDirectoryEx, body: file(vixproto.OpDeleteDirectoryEx, "/p", false)},
		{name: "DeleteDirectoryEx recursive", op: vixproto.OpDeleteDirectoryEx, body: file(vixproto.OpDeleteDirectoryEx, "/p", true)},
		{name: "DeleteDirectoryEx missing", op: vixproto.OpDeleteDirectoryEx, body: file(vixproto.OpDeleteDirectoryEx, "/p", true)},
		{name: "ReadEnvVariables", op: vixproto.OpReadEnvVariables, body: func(*vixVars) []byte {
			return (&vixproto.ReadEnv{Names: []string{"HOME", "USER", "NO_SUCH_VARIABLE"}}).Encode()
		}},
		{name: "StartProgram exit 7", op: vixproto.OpStartProgram, body: start("/bin/sh", "-c 'exit 7'")},
		{name: "ListProcessesEx exited", op: vixproto.OpListProcessesEx, body: pidsOf("StartProgram exit 7"),
			until: func(r string) bool { return strings.Contains(r, "<eCode>7</eCode>") }},
		{name: "StartProgram sleep", op: vixproto.OpStartProgram, body: start("/bin/sleep", "300")},
		{name: "ListProcessesEx running", op: vixproto.OpListProcessesEx, body: pidsOf("StartProgram sleep")},
		{name: "TerminateProcess", op: vixproto.OpTerminateProcess, body: func(v *vixVars) []byte {
			return (&vixproto.KillProcess{Pid: v.pids["StartProgram sleep"]}).Encode()
		}},
		{name: "TerminateProcess missing", op: vixproto.OpTerminateProcess, body: func(*vixVars) []byte {
			return (&vixproto.KillProcess{Pid: 4194303}).Encode()
		}},
		{name: "ListProcessesEx missing", op: vixproto.OpListProcessesEx, body: func(*vixVars) []byte {
			return (&vixproto.ListProcesses{Pids: []uint64{4194303}}).Encode()
		}},
		{name: "StartProgram missing", op: vixproto.OpStartProgram, body: start("/no/such/program", "")},
	}
}

// vixGoldenSetup makes $HOME/g with the file a, owned by the user.
func vixGoldenSetup(t *testing.T, v *vixVars) {
	t.Helper()
	uid, _ := strconv.Atoi(v.uid)
	gid, _ := strconv.Atoi(v.gid)
	dir := filepath.Join(v.home, "g")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{dir: 0o755, filepath.Join(dir, "a"): 0o644} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
}

func newVixVars(t *testing.T, name, password string) *vixVars {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return &vixVars{user: name, password: password, home: u.HomeDir, uid: u.Uid, gid: u.Gid, pids: map[string]uint64{}}
}

// runVixGolden runs the scenario against the tools behind ctl.
func runVixGolden(t *testing.T, ctl *vmxsim.Ctl, v *vixVars) []vixCaseRec {
	t.Helper()
	vixGoldenSetup(t, v)
	var out []vixCaseRec
	for _, c := range vixGoldenCases() {
		var cmd []byte
		if c.raw != nil {
			cmd = c.raw(v)
		} else {
			pw := v.password
			if c.password != "" {
				pw = c.password
			}
			msg, err := vixproto.NewRequest(c.op, 0, 0, vixproto.CredNamePassword, c.body(v), vixproto.NamePasswordCred(v.user, []byte(pw)))
			if err != nil {
				t.Fatal(err)
			}
			cmd = vixproto.Relayed("golden", msg)
		}
		var reply string
		send := func() bool {
			r, err := ctl.TCLO(t.Context(), string(cmd))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			reply = r
			return c.until == nil || c.until(reply)
		}
		if !send() {
			testutil.WaitFor(t, 15*time.Second, c.name, send)
		}
		if c.op == vixproto.OpStartProgram {
			if _, _, p, _, err := vixproto.ParseReply([]byte(strings.TrimPrefix(reply, "OK "))); err == nil {
				v.pids[c.name], _ = strconv.ParseUint(string(p), 10, 64)
			}
		}
		rec := vixCaseRec{Name: c.name, Request: hex.EncodeToString(cmd)}
		if utf8.ValidString(reply) {
			rec.Reply = reply
		} else {
			rec.ReplyHex = hex.EncodeToString([]byte(reply))
		}
		out = append(out, rec)
	}
	return out
}

// TestGuestOpsPeerGolden runs the scenario against Debian's vmtoolsd
// under the trap and checks the replies against the golden file with
// the run-specific fields masked; GOVMTOOLS_UPDATE_GOLDEN=1 rewrites the
// file from the run instead.
func TestGuestOpsPeerGolden(t *testing.T) {
	p := testutil.Peer(t)
	name, password, _ := guestUser(t)
	ctl := startPeerVix(t, p)
	v := newVixVars(t, name, password)
	got := runVixGolden(t, ctl, v)
	path := filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", GoldenVIX)
	if os.Getenv(EnvUpdateGolden) == "1" {
		g := vixGolden{Tools: p.Version, User: v.user, Password: v.password, Home: v.home, UID: v.uid, GID: v.gid, Cases: got}
		b, err := json.MarshalIndent(g, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d exchanges)", path, len(got))
		return
	}
	compareVixGolden(t, readVixGolden(t), v, got, nil)
}

// TestGuestOpsGolden runs the scenario against our vmtoolsd and requires
// Debian's replies, masked as maskVixReply says; the requests are the
// golden ones, rebuilt for this run's user.
func TestGuestOpsGolden(t *testing.T) {
	testutil.RequireHelperPAM(t)
	name, password, _ := guestUser(t)
	sim := testutil.StartSim(t, "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	startVmtoolsd(t, sim, "", nil)
	waitToolsRunning(t, ctl, 10*time.Second)
	v := newVixVars(t, name, password)
	compareVixGolden(t, readVixGolden(t), v, runVixGolden(t, ctl, v), oursDiffer)
}

// oursDiffer are the exchanges where our reply is allowed to differ from
// Debian's, and why (docs/guestops.md, "Golden vectors").
var oursDiffer = map[string]string{}

func readVixGolden(t *testing.T) *vixGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", GoldenVIX))
	if err != nil {
		t.Fatal(err)
	}
	var g vixGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// compareVixGolden checks that the scenario sent the golden requests
// (rebuilt for v) and got the golden replies, masked.
func compareVixGolden(t *testing.T, g *vixGolden, v *vixVars, got []vixCaseRec, allowed map[string]string) {
	t.Helper()
	if len(got) != len(g.Cases) {
		t.Fatalf("%d exchanges, golden has %d", len(got), len(g.Cases))
	}
	gv := &vixVars{user: g.User, password: g.Password, home: g.Home, uid: g.UID, gid: g.GID}
	for i, want := range g.Cases {
		have := got[i]
		if have.Name != want.Name {
			t.Fatalf("exchange %d is %q, golden %q", i, have.Name, want.Name)
		}
		if w, h := maskVixRequest(want.request(t), gv), maskVixRequest(have.request(t), v); w != h {
			t.Errorf("%s: request\n got %s\nwant %s", want.Name, h, w)
		}
		w, h := maskVixReply(want.Name, want.reply(t), gv), maskVixReply(want.Name, have.reply(t), v)
		if w == h {
			continue
		}
		if why, ok := allowed[want.Name]; ok {
			t.Logf("%s: differs as documented (%s):\n got %s\nwant %s", want.Name, why, h, w)
			continue
		}
		t.Errorf("%s: reply\n got %s\nwant %s", want.Name, h, w)
	}
}

// maskVixRequest renders a request with the run's user, password, home
// and pids replaced: the rest must be the same bytes.
func maskVixRequest(cmd []byte, v *vixVars) (out string) {
	_, msg, err := vixproto.SplitRelayed(cmd[len(vixproto.RelayedCommand):])
	if err != nil {
		return fmt.Sprintf("raw %q", cmd)
	}
	r, err := vixproto.Decode(msg)
	if err != nil && len(msg) > 0 {
		// The bad-magic case: render it with the magic restored.
		fixed := append([]byte{msg[0] ^ 0xff}, msg[1:]...)
		if r, err = vixproto.Decode(fixed); err != nil {
			return fmt.Sprintf("undecodable %x", msg)
		}
		defer func() { out = "bad magic: " + out }()
	}
	cred := "?"
	if c, err := vixproto.DecodeNamePassword(r.Cred); err == nil {
		cred = strings.ReplaceAll(c.Name, v.user, "$USER") + ":"
		if string(c.Password) == v.password {
			cred += "$PASSWORD"
		} else {
			cred += string(c.Password)
		}
	}
	body := strings.ReplaceAll(string(r.Body), v.home, "$HOME")
	if r.OpCode == vixproto.OpListProcessesEx || r.OpCode == vixproto.OpTerminateProcess {
		body = "(pids)"
	}
	return fmt.Sprintf("op %d flags %#x cred %d %s body %q", r.OpCode, r.CommonFlags, r.CredType, cred, body)
}

var (
	maskNum = regexp.MustCompile(`<(pid|start|eTime|mt|at)>[1-9][0-9]*</`)
	// open-vm-tools names temporary files <prefix><random><suffix>.
	maskTemp = regexp.MustCompile(`/pre[^/<]*suf`)
	// The additional error is errno left over from the operation, or
	// VGAuth's code, printed signed (open-vm-tools sends it even on
	// success; hostd shows it only in a SystemError's text).
	maskAddl = regexp.MustCompile(`^OK (-?[0-9]+) -?[0-9]+ `)
)

// maskVixReply renders a reply with what differs between runs and
// machines replaced: the user's name, home, uid and gid; pids, start,
// end, modification and access times (nonzero ones); temporary names;
// the additional error of a success; a StartProgram pid; and, in the
// tools properties, the values that describe the machine (version, OS,
// temp dir). What is left, the protocol cares about: the error codes,
// the tags and their order, file types, sizes and modes, exit codes.
func maskVixReply(name string, reply []byte, v *vixVars) string {
	s := string(reply)
	s = strings.ReplaceAll(s, v.home, "$HOME")
	s = strings.ReplaceAll(s, "<user>"+v.user+"</user>", "<user>$USER</user>")
	s = strings.ReplaceAll(s, "USER="+v.user+"<", "USER=$USER<")
	s = strings.ReplaceAll(s, "<uid>"+v.uid+"</uid><gid>"+v.gid+"</gid>", "<uid>$UID</uid><gid>$GID</gid>")
	s = maskNum.ReplaceAllString(s, "<$1>N</")
	s = maskTemp.ReplaceAllString(s, "/preXXXXsuf")
	s = maskAddl.ReplaceAllString(s, "OK $1 A ")
	if strings.HasPrefix(name, "StartProgram") && strings.HasPrefix(s, "OK 0 A ") {
		s = regexp.MustCompile(`^OK 0 A [0-9]+\x00$`).ReplaceAllString(s, "OK 0 A PID\x00")
	}
	if name == "GetToolsState (62)" || name == "Vix_1_Get_ToolsProperties" {
		s = maskProperties(s)
	}
	return fmt.Sprintf("%q", s)
}

// machineProps are the tools properties whose value describes the
// machine or the build: OS full and short names, tools version, host
// name, temp dir (open-vm-tools makes a random one per request).
var machineProps = map[int32]bool{4503: true, 4520: true, 4500: true, 4505: true, 203: true}

// maskProperties renders a tools-properties reply as its property list:
// id, type and value, but for the strings of machineProps.
func maskProperties(s string) string {
	b64, ok := strings.CutPrefix(s, "OK 0 A ")
	if !ok {
		return s
	}
	b64, nul := strings.CutSuffix(b64, "\x00")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "bad base64: " + s
	}
	ps, err := vixproto.ParseProperties(raw)
	if err != nil {
		return "bad property list: " + s
	}
	var out []string
	for _, p := range ps {
		switch {
		case p.Type == vixproto.PropBool:
			out = append(out, fmt.Sprintf("%d:bool=%v", p.ID, p.Bool))
		case p.Type == vixproto.PropInt32:
			out = append(out, fmt.Sprintf("%d:int=%d", p.ID, p.Int))
		case machineProps[p.ID]:
			out = append(out, fmt.Sprintf("%d:%d", p.ID, p.Type))
		default:
			out = append(out, fmt.Sprintf("%d:%d=%q", p.ID, p.Type, p.Str))
		}
	}
	if nul {
		out = append(out, "NUL")
	}
	return "properties " + strings.Join(out, " ")
}
