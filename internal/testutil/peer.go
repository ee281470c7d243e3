package testutil

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// PeerTools is Debian's open-vm-tools, unpacked by
// scripts/test-deps.d/20-peer.sh into .cache/peer/root of the repository
// (never installed: no services run). Its binaries need Env (the
// LD_LIBRARY_PATH of the unpacked libraries); run them under the trap
// (StartTrap, RunTrap), as they talk to the VMX over the backdoor.
type PeerTools struct {
	Root    string // the unpacked package
	Version string // the Debian package version, e.g. 2:12.2.0-1+deb12u4
	// Env holds the variables the peer's binaries need, as "K=V".
	Env []string
	// PluginDir and CommonPluginDir are vmtoolsd's --plugin-path and
	// --common-path.
	PluginDir, CommonPluginDir string
}

// Bin returns the path of one of the peer's binaries, e.g.
// "vmware-rpctool".
func (p *PeerTools) Bin(name string) string { return filepath.Join(p.Root, "usr/bin", name) }

var (
	peerOnce sync.Once
	peerOut  string
)

// Peer returns Debian's open-vm-tools, running the test-deps script once
// per test process if it is not unpacked yet. The test is skipped (failed
// under GOVMTOOLS_REQUIRE_ALL=1) when it cannot be had, for example
// without apt or root.
func Peer(t testing.TB) *PeerTools {
	t.Helper()
	NotOnArm64(t, Arm64Peer)
	RequireTrap(t)
	root := ModuleRoot(t)
	cache := filepath.Join(root, ".cache", "peer")
	ok := func() bool {
		_, err := os.Stat(filepath.Join(cache, "ok"))
		return err == nil
	}
	if !ok() {
		peerOnce.Do(func() {
			out, err := exec.Command(filepath.Join(root, "scripts", "test-deps.d", "20-peer.sh")).CombinedOutput()
			peerOut = string(out)
			if err != nil {
				peerOut += err.Error()
			}
		})
	}
	Require(t, ok(), "Debian's open-vm-tools (the peer) in .cache/peer", "run make test-deps as root on Debian (apt-get download open-vm-tools); "+strings.TrimSpace(peerOut))
	version, _ := os.ReadFile(filepath.Join(cache, "version"))
	r := filepath.Join(cache, "root")
	lib := filepath.Join(r, "usr/lib/x86_64-linux-gnu")
	return &PeerTools{
		Root:            r,
		Version:         strings.TrimSpace(string(version)),
		Env:             []string{"LD_LIBRARY_PATH=" + lib},
		PluginDir:       filepath.Join(lib, "open-vm-tools/plugins/vmsvc"),
		CommonPluginDir: filepath.Join(lib, "open-vm-tools/plugins/common"),
	}
}

// TraceMsg is one message of a vmxsim trace (vmxsim --trace FILE), the
// format of the golden vectors in testdata/peer: see vmxsim.TraceRecord.
type TraceMsg struct {
	Ch   string // "rpci" or "tclo"
	From string // "guest" or "host"
	Via  string // the RPCI transport
	Msg  []byte
}

// ReadTrace decodes a trace file (JSON lines).
func ReadTrace(t testing.TB, path string) []TraceMsg {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []TraceMsg
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r struct {
			Ch, From, Via, Msg, Hex string
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		m := TraceMsg{Ch: r.Ch, From: r.From, Via: r.Via, Msg: []byte(r.Msg)}
		if r.Hex != "" {
			if _, err := fmt.Sscanf(r.Hex, "%x", &m.Msg); err != nil {
				t.Fatalf("%s:%d: hex: %v", path, i+1, err)
			}
		}
		out = append(out, m)
	}
	return out
}

// GoldenPeerTrace reads a golden trace from testdata/peer at the module
// root, e.g. GoldenPeerTrace(t, "vmtoolsd-12.2.0-startup.jsonl").
func GoldenPeerTrace(t testing.TB, name string) []TraceMsg {
	t.Helper()
	return ReadTrace(t, filepath.Join(ModuleRoot(t), "testdata", "peer", name))
}
