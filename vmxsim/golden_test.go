package vmxsim

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// goldenMsgs reads a golden trace of testdata/peer (captured from Debian's
// vmtoolsd under the trap).
func goldenMsgs(t testing.TB, name string) []TraceRecord {
	b, err := os.ReadFile("../testdata/peer/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var out []TraceRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r TraceRecord
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestGoldenPeerRPCI feeds every RPCI Debian's vmtoolsd sent (golden
// vectors, NULs and spaces as sent) to a fresh core: the core must accept
// each one it models and decode what it carries. Commands the simulator
// does not model yet are listed, so a feature that adds one updates the
// list.
func TestGoldenPeerRPCI(t *testing.T) {
	c := newCore(t, Options{})
	notModelled := map[string]bool{}
	var hostName, caps []string
	for _, r := range goldenMsgs(t, "vmtoolsd-12.2.0-full.jsonl") {
		if r.Ch != "rpci" || r.From != "guest" {
			continue
		}
		msg, err := r.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		reply := string(c.RPCI(t.Context(), Caller{Transport: "backdoor"}, msg))
		name, args := splitRPCI(msg)
		if reply == ReplyUnknownCommand {
			notModelled[name] = true
			continue
		}
		if !strings.HasPrefix(reply, "1 ") {
			t.Errorf("%q: %q", msg, reply)
		}
		if name == "SetGuestInfo" && bytes.HasPrefix(args, []byte(" 1 ")) {
			hostName = append(hostName, string(bytes.TrimSuffix(args[3:], []byte{0})))
		}
		if strings.HasPrefix(name, "tools.capability.") {
			caps = append(caps, name)
		}
	}
	s := c.State()
	if s.Tools.Version != "12352" || s.Tools.VersionType != "4" {
		t.Errorf("tools %+v, want version 12352 type 4", s.Tools)
	}
	if len(hostName) == 0 || s.Guest.HostName != hostName[len(hostName)-1] {
		t.Errorf("host name %q, golden says %q", s.Guest.HostName, hostName)
	}
	if len(s.Capabilities) == 0 || len(caps) == 0 {
		t.Fatalf("no capabilities decoded: %q", s.Capabilities)
	}
	want := map[string]bool{}
	if len(notModelled) != len(want) {
		t.Errorf("RPCIs of open-vm-tools the simulator does not model: %v", notModelled)
	}
}
