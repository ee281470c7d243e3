package toolboxcmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
)

// fakeHost answers backdoor calls from a table and RPCs from a map, and
// records the RPCs.
type fakeHost struct {
	lb    func(r *backdoor.Regs)
	rpc   map[string]string // request -> reply ("1 ..." or "0 ...")
	sent  []string
	noBkd bool
}

func (h *fakeHost) LB(r *backdoor.Regs) error {
	if h.noBkd {
		return os.ErrNotExist
	}
	if h.lb != nil {
		h.lb(r)
	}
	return nil
}

func (h *fakeHost) RPC(_ context.Context, req []byte) ([]byte, error) {
	h.sent = append(h.sent, string(req))
	reply, ok := h.rpc[string(req)]
	if !ok {
		return nil, &rpc.ReplyError{Text: "Unknown command"}
	}
	if r, ok := strings.CutPrefix(reply, "0 "); ok {
		return nil, &rpc.ReplyError{Text: r}
	}
	return []byte(strings.TrimPrefix(reply, "1 ")), nil
}

func runWith(t *testing.T, h *fakeHost, dir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Host: h, ConfDir: dir, IsRoot: func() bool { return true }, Version: "test"}
	code := Run(t.Context(), append([]string{"vmware-toolbox-cmd"}, args...), env)
	return out.String(), errOut.String(), code
}

func TestGetopt(t *testing.T) {
	for _, c := range []struct {
		argv []string
		o    options
		args []string
		bad  string
	}{
		{[]string{"config", "-q", "get", "a", "b"}, options{quiet: true}, []string{"config", "get", "a", "b"}, ""},
		{[]string{"-hqv"}, options{help: true, quiet: true, version: true}, nil, ""},
		{[]string{"--ver"}, options{version: true}, nil, ""},
		{[]string{"--q", "stat"}, options{quiet: true}, []string{"stat"}, ""},
		{[]string{"--", "-v", "x"}, options{}, []string{"-v", "x"}, ""},
		{[]string{"-", "x"}, options{}, []string{"-", "x"}, ""},
		{[]string{"--bogus=1"}, options{}, nil, "unrecognized option '--bogus=1'"},
		{[]string{"--version=1"}, options{}, nil, "option '--version' doesn't allow an argument"},
		{[]string{"-qz"}, options{}, nil, "invalid option -- 'z'"},
		{[]string{"--"}, options{}, nil, ""},
	} {
		o, args, bad := getopt(c.argv)
		if bad != c.bad || (bad == "" && (o != c.o || strings.Join(args, " ") != strings.Join(c.args, " "))) {
			t.Errorf("getopt(%q) = %+v %q %q, want %+v %q %q", c.argv, o, args, bad, c.o, c.args, c.bad)
		}
	}
}

func TestKeyFileEdits(t *testing.T) {
	const base = "# top\n[a]\n# c\nx = 1\n\n[b]\ny=2\n[a]\nz = 3\n"
	for _, c := range []struct {
		name  string
		edit  func(k *keyFile)
		want  string
		value string
	}{
		{"replace the last", func(k *keyFile) { k.set("a", "x", "9") }, "# top\n[a]\n# c\nx=9\n\n[b]\ny=2\n[a]\nz = 3\n", ""},
		{"new key after the group's last key", func(k *keyFile) { k.set("b", "n", "v") }, "# top\n[a]\n# c\nx = 1\n\n[b]\ny=2\nn=v\n[a]\nz = 3\n", ""},
		{"new key in a group's last section", func(k *keyFile) { k.set("a", "n", "v") }, "# top\n[a]\n# c\nx = 1\n\n[b]\ny=2\n[a]\nz = 3\nn=v\n", ""},
		{"new group", func(k *keyFile) { k.set("c", "k", " a\tb\\c\n") }, base + "\n[c]\nk=\\sa\\tb\\\\c\\n\n", " a\tb\\c\n"},
		{"remove", func(k *keyFile) { k.remove("a", "x") }, "# top\n[a]\n# c\n\n[b]\ny=2\n[a]\nz = 3\n", ""},
		{"remove nothing", func(k *keyFile) { k.remove("b", "x") }, base, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "tools.conf"), []byte(base), 0o600)
			r := &run{Env: &Env{ConfDir: dir}}
			k, err := r.loadConf()
			if err != nil || !k.exists {
				t.Fatal(err)
			}
			c.edit(k)
			if err := r.writeConf(k); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "tools.conf"))
			if string(got) != c.want {
				t.Fatalf("got\n%q\nwant\n%q", got, c.want)
			}
			if fi, _ := os.Stat(filepath.Join(dir, "tools.conf")); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want the old file's 0600", fi.Mode())
			}
			if c.value != "" {
				if v, _ := k.parsed().Lookup("c", "k"); v != c.value {
					t.Errorf("read back %q, want %q", v, c.value)
				}
			}
		})
	}
}

func TestConfigGetGlobal(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tools.conf"), []byte("[globalconf]\nenabled = true\n[a]\nx = local\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tools-global.conf"), []byte("[a]\nx = global\ny = global\n"), 0o644)
	for key, want := range map[string]string{"x": "[a] x = local\n", "y": "[a] y = global\n", "z": "[a] z UNSET\n"} {
		if out, _, code := runWith(t, &fakeHost{}, dir, "config", "get", "a", key); out != want || code != 0 {
			t.Errorf("config get a %s: %d %q, want %q", key, code, out, want)
		}
	}
}

func TestTimesyncSendsOnlyChanges(t *testing.T) {
	sync := false
	h := &fakeHost{
		lb: func(r *backdoor.Regs) {
			if r.CX == cmdGetGUIOptions && sync {
				r.AX = guiSyncTime
			} else if r.CX == cmdGetGUIOptions {
				r.AX = 0
			}
		},
		rpc: map[string]string{"vmx.set_option synctime 0 1\x00": "1 ", "vmx.set_option synctime 1 0\x00": "0 denied"},
	}
	if out, _, code := runWith(t, h, t.TempDir(), "timesync", "enable"); out != "Enabled\n" || code != 0 || len(h.sent) != 1 {
		t.Fatalf("enable: %d %q, sent %q", code, out, h.sent)
	}
	sync = true
	if out, _, code := runWith(t, h, t.TempDir(), "timesync", "enable"); out != "Enabled\n" || code != 0 || len(h.sent) != 1 {
		t.Fatalf("enable again: %d %q, sent %q", code, out, h.sent)
	}
	if _, errOut, code := runWith(t, h, t.TempDir(), "timesync", "disable"); errOut != "Error: denied\n" || code != 1 {
		t.Fatalf("refused disable: %d %q", code, errOut)
	}
}

func TestNoBackdoor(t *testing.T) {
	h := &fakeHost{noBkd: true}
	for args, want := range map[string]string{"stat speed": "Unable to get processor speed.\n", "stat hosttime": "Unable to get host time.\n"} {
		if _, errOut, code := runWith(t, h, t.TempDir(), strings.Fields(args)...); errOut != want || code != ExTempFail {
			t.Errorf("%s: %d %q", args, code, errOut)
		}
	}
	if out, _, code := runWith(t, h, t.TempDir(), "device", "list"); out != "" || code != 0 {
		t.Errorf("device list: %d %q", code, out)
	}
}

func TestGuestlib(t *testing.T) {
	golden := testutil.ReadHex(t, "guestlib-v3.hex")
	h := &fakeHost{rpc: map[string]string{"guestlib.info.get 3": "1 " + string(golden)}}
	for sub, want := range map[string]string{"sessionid": "0x1d2c3b4a59687766\n", "cpulimit": "4294967295 MHz\n", "memres": "0 MB\n"} {
		if out, errOut, code := runWith(t, h, t.TempDir(), "stat", sub); out != want || code != 0 {
			t.Errorf("stat %s: %d %q %q, want %q", sub, code, out, errOut, want)
		}
	}
	// An older host: fewer statistics, one of them invalid.
	short := append([]byte(nil), golden[:16]...)
	x := binary.BigEndian.AppendUint32(nil, 12)
	for id := uint32(1); id <= 12; id++ {
		valid := uint32(1)
		if id == 12 {
			valid = 0
		}
		x = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(x, id), valid), 7)
		if id == 4 {
			x = binary.BigEndian.AppendUint32(x, 0)
		}
	}
	binary.LittleEndian.PutUint32(short[12:], uint32(len(x)))
	h.rpc["guestlib.info.get 3"] = "1 " + string(short) + string(x)
	for sub, want := range map[string]string{
		"balloon": "Failed to get ballooned memory: This value is not available on this host\n",
		"swap":    "Failed to get swapped memory: Host does not support this request.\n",
	} {
		if _, errOut, code := runWith(t, h, t.TempDir(), "stat", sub); errOut != want || code != ExTempFail {
			t.Errorf("stat %s: %d %q, want %q", sub, code, errOut, want)
		}
	}
	// A host without the Guest API.
	delete(h.rpc, "guestlib.info.get 3")
	if _, errOut, code := runWith(t, h, t.TempDir(), "stat", "balloon"); errOut != "UpdateInfo failed: VMware Guest API is not enabled on the host\n" || code != ExTempFail {
		t.Errorf("no guestlib: %d %q", code, errOut)
	}
}

func TestNotRoot(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errOut, Host: &fakeHost{}, IsRoot: func() bool { return false }}
	if code := Run(t.Context(), []string{"tbc", "config"}, env); code != ExNoPerm || errOut.String() != "tbc: You must be root to perform config operations.\n" {
		t.Fatalf("%d %q", code, errOut.String())
	}
}

// FuzzDecodeGuestlib: any reply decodes or fails cleanly; a decoded one
// has at most the statistics the header's count announces, in order.
func FuzzDecodeGuestlib(f *testing.F) {
	f.Add(testutil.ReadHex(f, "guestlib-v3.hex"))
	f.Add([]byte{3, 0, 0, 0})
	f.Add(append(make([]byte, 12), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGuestlib(b)
		if err != nil {
			return
		}
		if len(b) < 16 {
			t.Fatalf("decoded a %d-byte reply", len(b))
		}
		for id := range g.stats {
			if id == 0 || id >= 39 {
				t.Fatalf("statistic id %d", id)
			}
		}
	})
}

// FuzzKeyFileEdit: setting a key in any file leaves it readable with the
// new value, and every other line of the file as it was.
func FuzzKeyFileEdit(f *testing.F) {
	f.Add("# c\n[a]\nx = 1\n", "a", "x", "v")
	f.Add("[a]\n[a]\nx=1\nx=2\n", "a", "x", " lead")
	f.Add("", "g", "k", "a\\b\nc")
	f.Fuzz(func(t *testing.T, file, group, key, value string) {
		if !validName(group, "[]\n\r") || !validName(key, "=[]\n\r#;") || strings.ContainsAny(file, "\r\x00") {
			return
		}
		if t := strings.Trim(value, " \t\n\r"); strings.TrimSpace(t) != t {
			return // other Unicode spaces at the ends, which readers trim
		}
		k := &keyFile{exists: true, lines: strings.Split(strings.TrimSuffix(file, "\n"), "\n")}
		before := append([]string(nil), k.lines...)
		k.set(group, key, value)
		if v, ok := k.parsed().Lookup(group, key); !ok || v != value {
			t.Fatalf("after set %s.%s=%q read back %q %v\n%s", group, key, value, v, ok, strings.Join(k.lines, "\n"))
		}
		kept := map[string]int{}
		for _, l := range k.lines {
			kept[l]++
		}
		for _, l := range before {
			if kk, ok := keyOf(l); ok && kk == key {
				continue
			}
			if kept[l] == 0 {
				t.Fatalf("line %q lost", l)
			}
			kept[l]--
		}
	})
}

// validName is a group or key name a tools.conf can hold.
func validName(s, bad string) bool {
	return s != "" && s == strings.TrimSpace(s) && !strings.ContainsAny(s, bad) && !strings.HasPrefix(s, "#") && !strings.HasPrefix(s, ";")
}

// TestWipeFills: a wipe fills a real file system to its last 5 MB with
// files that are gone when it returns, drawing the progress up to 100.
func TestWipeFills(t *testing.T) {
	mnt, _ := testutil.LoopFS(t)
	var out, errOut bytes.Buffer
	r := &run{Env: &Env{Stdout: &out, Stderr: &errOut}, prog: "tbc"}
	if err := r.fill(mnt); err != nil {
		t.Fatalf("%v %s", err, errOut.String())
	}
	if !strings.HasSuffix(out.String(), "\rProgress: 100 [===========>]") || strings.Count(out.String(), "\rProgress: ") < 3 {
		t.Fatalf("progress: %q", out.String())
	}
	entries, _ := os.ReadDir(mnt)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "wiper") {
			t.Fatalf("%s left behind", e.Name())
		}
	}
}
