package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/govmtools/govmtools/internal/testutil"
)

// EnvUpdateGolden makes TestPeerVMToolsd rewrite the golden vectors in
// testdata/peer from the live capture.
const EnvUpdateGolden = "GOVMTOOLS_UPDATE_GOLDEN"

// GoldenStartup is the golden capture of Debian's vmtoolsd starting
// against vmxsim (see testdata/peer/README.md).
const GoldenStartup = "vmtoolsd-12.2.0-startup.jsonl"

// GoldenFull is the whole capture of the same run, machine-specific data
// (SetGuestInfo, info-set guestinfo.ip, log lines) included.
const GoldenFull = "vmtoolsd-12.2.0-full.jsonl"

// TestPeerRPCToolAndCheckVM: Debian's vmware-rpctool and vmware-checkvm
// reach the same simulated VMX as ours under the trap, on both paths;
// what one sets the other reads, at every length mod 4 and at 60 KiB.
func TestPeerRPCToolAndCheckVM(t *testing.T) {
	p := testutil.Peer(t)
	for _, mode := range []string{"hb", "lb"} {
		t.Run(mode, func(t *testing.T) {
			var args []string
			if mode == "lb" {
				args = []string{"--lb"}
			}
			tr := testutil.StartTrap(t, args...)
			ours := filepath.Join(tr.Bin, "vmware-rpctool")
			theirs := p.Bin("vmware-rpctool")
			for _, n := range []int{1, 2, 3, 4, 60 << 10, 60<<10 + 3} {
				v := value(n)
				key := fmt.Sprintf("deb%d", n)
				if out, errOut, code := tr.RunEnv(t, p.Env, theirs, "info-set guestinfo."+key+" "+v); code != 0 || out != "\n" {
					t.Fatalf("debian info-set len %d: %d %q %q", n, code, out, errOut)
				}
				if got, _ := trapGuestinfo(t, tr)[key].(string); got != v {
					t.Fatalf("vmxsim received %d bytes from Debian's rpctool, want %d", len(got), n)
				}
				if out, _, code := tr.Run(t, ours, "info-get guestinfo."+key); code != 0 || out != v+"\n" {
					t.Fatalf("ours reading Debian's len %d: %d, %d bytes", n, code, len(out))
				}
				key = fmt.Sprintf("ours%d", n)
				// An empty reply prints a lone newline, as Debian's does.
				if out, errOut, code := tr.Run(t, ours, "info-set guestinfo."+key+" "+v); code != 0 || out != "\n" {
					t.Fatalf("ours info-set len %d: %d %q %q", n, code, out, errOut)
				}
				if out, errOut, code := tr.RunEnv(t, p.Env, theirs, "info-get guestinfo."+key); code != 0 || out != v+"\n" {
					t.Fatalf("Debian's reading ours len %d: %d, %d bytes %q", n, code, len(out), errOut)
				}
			}
			// Debian's refusal path: exit 1 and the host's text.
			if _, errOut, code := tr.RunEnv(t, p.Env, theirs, "info-get guestinfo.missing"); code == 0 || !strings.Contains(errOut, "No value found") {
				t.Fatalf("debian missing key: %d %q", code, errOut)
			}
			out, errOut, code := tr.RunEnv(t, p.Env, p.Bin("vmware-checkvm"))
			if code != 0 || out != "VMware software version 6 (good)\n" {
				t.Fatalf("debian checkvm: %d %q %q", code, out, errOut)
			}
			if out, _, code := tr.RunEnv(t, p.Env, p.Bin("vmware-checkvm"), "-p"); code != 0 || strings.TrimSpace(out) != "ESX Server" {
				t.Fatalf("debian checkvm -p: %d %q", code, out)
			}
			bd := backdoorStats(t, tr)
			if mode == "lb" && bd["hbOut"]+bd["hbIn"] != 0 || mode == "hb" && bd["hbOut"] == 0 {
				t.Fatalf("%s: counters %v", mode, bd)
			}
		})
	}
	// Outside the trap Debian's checkvm refuses (the machine is KVM).
	if _, _, code := testutil.RunBinary(t, "/usr/bin/env", append(p.Env, p.Bin("vmware-checkvm"))...); code == 0 {
		t.Fatal("Debian's checkvm accepted this machine outside the trap")
	}
}

// TestPeerVMToolsd: Debian's vmtoolsd, under the trap, binds the toolbox
// TCLO channel, answers reset and ping, registers its capabilities and
// reports its version to vmxsim. Its traffic is captured with --trace; the
// capture must agree with the golden vectors in testdata/peer on the
// startup exchange (GOVMTOOLS_UPDATE_GOLDEN=1 rewrites them).
func TestPeerVMToolsd(t *testing.T) {
	p := testutil.Peer(t)
	work := t.TempDir()
	trace := filepath.Join(work, "trace.jsonl")
	conf := filepath.Join(work, "tools.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[logging]
log = true
vmsvc.level = debug
vmsvc.handler = file
vmsvc.data = %s/vmsvc.log

[guestinfo]
poll-interval = 1
`, work)), 0o644)
	tr := testutil.StartTrap(t, "--ping-interval", "200ms", "--trace", trace)
	env := append(append([]string{}, p.Env...), "HOME="+work)
	args := append(env, p.Bin("vmtoolsd"), "-c", conf, "-p", p.PluginDir, "--common-path", p.CommonPluginDir)
	pid, output := tr.Start(t, "/usr/bin/env", args...)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			// Wait for it to exit: its shutdown RPCIs (capabilities
			// withdrawn) are part of the golden trace.
			syscall.Kill(pid, syscall.SIGTERM)
			tr.Wait(t, pid)
		}
	}
	defer stop()
	testutil.WaitFor(t, 30*time.Second, "Debian's vmtoolsd running with capabilities and guest info", func() bool {
		st := tr.State(t)
		tools, _ := st["tools"].(map[string]any)
		caps, _ := st["capabilities"].([]any)
		guest, _ := st["guest"].(map[string]any)
		return tools["running"] == true && tools["heartbeat"] == "green" && len(caps) > 0 && guest["hostName"] != nil
	})
	st := tr.State(t)
	tools := st["tools"].(map[string]any)
	if tools["version"] != "12352" {
		t.Errorf("tools version %v, want 12352 (12.2.0)", tools["version"])
	}
	stop()
	if out := output(); strings.Contains(out, "Segmentation fault") {
		t.Errorf("vmtoolsd output:\n%s", out)
	}

	msgs := testutil.ReadTrace(t, trace)
	// reset -> OK ATR toolbox, ping -> OK, Capabilities_Register answered.
	answers := map[string]string{}
	for i := 0; i+1 < len(msgs); i++ {
		if msgs[i].Ch == "tclo" && msgs[i].From == "host" {
			for j := i + 1; j < len(msgs); j++ {
				if msgs[j].Ch == "tclo" && msgs[j].From == "guest" {
					if _, seen := answers[string(msgs[i].Msg)]; !seen {
						answers[string(msgs[i].Msg)] = string(msgs[j].Msg)
					}
					break
				}
			}
		}
	}
	for cmd, want := range map[string]string{"reset": "OK ATR toolbox", "ping": "OK ", "Capabilities_Register": "OK "} {
		if answers[cmd] != want {
			t.Errorf("vmtoolsd answered %q with %q, want %q", cmd, answers[cmd], want)
		}
	}

	golden := startupVectors(msgs)
	dir := filepath.Join(testutil.ModuleRoot(t), "testdata", "peer")
	if os.Getenv(EnvUpdateGolden) == "1" {
		writeGolden(t, filepath.Join(dir, GoldenStartup), golden)
		writeGolden(t, filepath.Join(dir, GoldenFull), msgs)
		t.Logf("rewrote %s (%d messages) and %s (%d)", GoldenStartup, len(golden), GoldenFull, len(msgs))
		return
	}
	want := startupVectors(testutil.GoldenPeerTrace(t, GoldenStartup))
	// The startup exchange is deterministic: the TCLO commands and
	// answers, and the capability, version and unified_loop RPCIs.
	if g, w := render(golden), render(want); g != w {
		t.Errorf("Debian's vmtoolsd startup differs from the golden vectors:\n got:\n%s\nwant:\n%s", g, w)
	}
}

// startupVectors keeps the deterministic part of a capture: every TCLO
// message, and the RPCIs (with their replies) that configure the VMX:
// tools.capability.*, tools.set.version*, vmx.capability.*. SetGuestInfo,
// info-set and log carry machine-specific data and are only in the full
// file.
func startupVectors(msgs []testutil.TraceMsg) []testutil.TraceMsg {
	var out []testutil.TraceMsg
	var keepTCLO, keepRPCI bool // keep the next reply on that channel
	for _, m := range msgs {
		switch {
		case m.Ch == "tclo" && m.From == "host":
			// The ping cadence makes the count of pings vary: keep the
			// first.
			keepTCLO = !(string(m.Msg) == "ping" && containsPing(out))
			if keepTCLO {
				out = append(out, m)
			}
		case m.Ch == "tclo":
			if keepTCLO {
				out = append(out, m)
			}
			keepTCLO = false
		case m.From == "guest":
			name, _, _ := bytes.Cut(m.Msg, []byte(" "))
			keepRPCI = bytes.HasPrefix(name, []byte("tools.capability.")) || bytes.HasPrefix(name, []byte("tools.set.version")) || bytes.HasPrefix(name, []byte("vmx.capability."))
			if keepRPCI {
				out = append(out, m)
			}
		default:
			if keepRPCI {
				out = append(out, m)
			}
			keepRPCI = false
		}
	}
	return out
}

func containsPing(ms []testutil.TraceMsg) bool {
	for _, m := range ms {
		if m.Ch == "tclo" && string(m.Msg) == "ping" {
			return true
		}
	}
	return false
}

// render prints the TCLO exchange, then the RPCIs: each sequence is in
// order, but how the two interleave depends on thread timing.
func render(ms []testutil.TraceMsg) string {
	var b strings.Builder
	for _, ch := range []string{"tclo", "rpci"} {
		for _, m := range ms {
			if m.Ch == ch {
				fmt.Fprintf(&b, "%s %s %q\n", m.Ch, m.From, m.Msg)
			}
		}
	}
	return b.String()
}

func writeGolden(t *testing.T, path string, ms []testutil.TraceMsg) {
	var b bytes.Buffer
	for _, m := range ms {
		rec := map[string]string{"ch": m.Ch, "from": m.From}
		if m.Via != "" {
			rec["via"] = m.Via
		}
		if utf8.Valid(m.Msg) {
			rec["msg"] = string(m.Msg)
		} else {
			rec["hex"] = hex.EncodeToString(m.Msg)
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(rec)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
