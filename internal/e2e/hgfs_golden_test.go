package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
)

// goldenHGFS is the golden capture of Debian's vmhgfs-fuse and
// vmware-hgfsclient, in testdata/peer.
const goldenHGFS = "vmhgfs-fuse-12.2.0.jsonl"

// TestHGFSPeerGolden runs Debian's vmhgfs-fuse under the trap with
// --trace through a fixed script of file operations on the golden share
// (hgfswork.GoldenShare), then Debian's vmware-hgfsclient. Every HGFS
// request it sends must parse, and every op the script needs must have
// been answered with success (the missing name with NO_SUCH_FILE). With
// GOVMTOOLS_UPDATE_GOLDEN=1 the capture becomes the golden vectors that
// hgfsproto and vmxsim test against (TestGoldenPeer* there).
func TestHGFSPeerGolden(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "trace.jsonl")
	e := newHGFSEnv(t, openVMTools, "--trace", trace)
	if err := hgfswork.GoldenShare(e.share); err != nil {
		t.Fatal(err)
	}
	mnt := e.mount(t, ".host:/")
	s := filepath.Join(mnt, "s")
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := os.ReadDir(mnt)
	step("list the shares", err)
	_, err = os.Lstat(filepath.Join(s, "hello.txt"))
	step("stat", err)
	b, err := os.ReadFile(filepath.Join(s, "hello.txt"))
	step("read", err)
	if string(b) != "hello, world\n" {
		t.Fatalf("read %q", b)
	}
	_, err = hgfswork.ListLong(filepath.Join(s, "dir"))
	step("ls -l", err)
	_, err = os.Readlink(filepath.Join(s, "dir", "link"))
	step("readlink", err)
	n := filepath.Join(s, "new.txt")
	step("write", os.WriteFile(n, []byte("new content\n"), 0o644))
	step("chmod", os.Chmod(n, 0o600))
	step("truncate", os.Truncate(n, 3))
	step("utimens", os.Chtimes(n, hgfswork.GoldenTime, hgfswork.GoldenTime))
	step("mkdir", os.Mkdir(filepath.Join(s, "sub"), 0o750))
	step("rename", os.Rename(n, filepath.Join(s, "sub", "renamed.txt")))
	step("symlink", os.Symlink("../hello.txt", filepath.Join(s, "sub", "link")))
	var st syscall.Statfs_t
	step("statfs", syscall.Statfs(s, &st))
	if _, err := os.Lstat(filepath.Join(s, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v", err)
	}
	step("unlink symlink", os.Remove(filepath.Join(s, "sub", "link")))
	step("unlink", os.Remove(filepath.Join(s, "sub", "renamed.txt")))
	step("rmdir", os.Remove(filepath.Join(s, "sub")))
	if err := hgfswork.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	// The client destroys its session when it unmounts.
	testutil.WaitFor(t, 10*time.Second, "DESTROY_SESSION_V4 in the trace", func() bool {
		return slices.Contains(hgfsOps(t, readHGFSTrace(t, trace)), hgfsproto.OpDestroySessionV4.String())
	})
	peer := testutil.Peer(t)
	out, errOut, code := e.trap.RunEnv(t, peer.Env, peer.Bin("vmware-hgfsclient"))
	if code != 0 || out != "s\n" {
		t.Fatalf("vmware-hgfsclient: %d %q %s", code, out, errOut)
	}

	msgs := readHGFSTrace(t, trace)
	ops := hgfsOps(t, msgs)
	for _, want := range []hgfsproto.Op{
		hgfsproto.OpCreateSessionV4, hgfsproto.OpGetattrV3, hgfsproto.OpSearchOpenV3, hgfsproto.OpSearchReadV3,
		hgfsproto.OpOpenV3, hgfsproto.OpReadV3, hgfsproto.OpWriteV3, hgfsproto.OpCloseV3, hgfsproto.OpSetattrV3,
		hgfsproto.OpCreateDirV3, hgfsproto.OpRenameV3, hgfsproto.OpCreateSymlinkV3, hgfsproto.OpQueryVolumeInfoV3,
		hgfsproto.OpDeleteFileV3, hgfsproto.OpDeleteDirV3, hgfsproto.OpDestroySessionV4,
		hgfsproto.OpSearchOpen, hgfsproto.OpSearchRead, hgfsproto.OpSearchClose,
	} {
		if !slices.Contains(ops, want.String()) {
			t.Errorf("the capture lacks %v (ops: %v)", want, ops)
		}
	}
	if os.Getenv(EnvUpdateGolden) == "1" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for _, m := range msgs {
			enc.Encode(m)
		}
		dst := filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", goldenHGFS)
		if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d messages)", dst, len(msgs))
		return
	}
	golden := hgfsOps(t, readHGFSTrace(t, filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", goldenHGFS)))
	sort.Strings(golden)
	sort.Strings(ops)
	if !slices.Equal(slices.Compact(golden), slices.Compact(ops)) {
		t.Errorf("ops differ from the golden capture (%s=1 rewrites it):\ngolden %v\nnow    %v", EnvUpdateGolden, slices.Compact(golden), slices.Compact(ops))
	}
}

// goldenMsg is one golden record: a trace record without its time.
type goldenMsg struct {
	Ch   string `json:"ch"`
	From string `json:"from"`
	Via  string `json:"via,omitempty"`
	Msg  string `json:"msg,omitempty"`
	Hex  string `json:"hex,omitempty"`
}

// readHGFSTrace returns the RPCI records of a trace: the "f" requests and
// their replies, and the info-get of the packet-size switch.
func readHGFSTrace(t *testing.T, path string) []goldenMsg {
	t.Helper()
	var out []goldenMsg
	keep := false
	for _, m := range testutil.ReadTrace(t, path) {
		if m.Ch != "rpci" {
			continue
		}
		if m.From == "guest" {
			keep = bytes.HasPrefix(m.Msg, []byte("f ")) || bytes.Equal(m.Msg, []byte("f")) || bytes.HasPrefix(m.Msg, []byte("info-get guestinfo.hgfs."))
		}
		if !keep {
			continue
		}
		g := goldenMsg{Ch: m.Ch, From: m.From, Via: m.Via}
		if utf8.Valid(m.Msg) {
			g.Msg = string(m.Msg)
		} else {
			g.Hex = hex.EncodeToString(m.Msg)
		}
		out = append(out, g)
	}
	return out
}

// hgfsOps parses every "f" request of msgs and returns their op names.
func hgfsOps(t *testing.T, msgs []goldenMsg) []string {
	t.Helper()
	var ops []string
	for _, m := range msgs {
		if m.From != "guest" {
			continue
		}
		b := goldenBytes(t, m)
		p, ok := bytes.CutPrefix(b, []byte("f "))
		if !ok || len(p) == 0 {
			continue // the ping, or the info-get
		}
		r, err := hgfsproto.ParseRequest(p)
		if err != nil {
			t.Fatalf("request %x: %v", p[:min(len(p), 64)], err)
		}
		ops = append(ops, r.Op.String())
	}
	return ops
}

func goldenBytes(t *testing.T, m goldenMsg) []byte {
	t.Helper()
	if m.Hex == "" {
		return []byte(m.Msg)
	}
	b, err := hex.DecodeString(m.Hex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
