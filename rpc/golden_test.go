package rpc

import (
	"context"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestGoldenPeerTCLO replays the TCLO commands Debian's vmtoolsd received
// from vmxsim (testdata/peer, captured under the trap) through our loop's
// dispatch: reset, ping, and a handler with no result must be answered
// with exactly the bytes open-vm-tools sent back.
func TestGoldenPeerTCLO(t *testing.T) {
	msgs := testutil.GoldenPeerTrace(t, "vmtoolsd-12.2.0-startup.jsonl")
	mux := &Mux{}
	for _, name := range []string{"Set_Option", "Capabilities_Register"} {
		mux.HandleFunc(name, func(ctx context.Context, args []byte) ([]byte, error) { return nil, nil })
	}
	l := &Loop{App: "toolbox", Mux: mux}
	checked := 0
	for i := 0; i+1 < len(msgs); i++ {
		m := msgs[i]
		if m.Ch != "tclo" || m.From != "host" {
			continue
		}
		var want []byte
		for _, r := range msgs[i+1:] {
			if r.Ch == "tclo" {
				if r.From == "guest" {
					want = r.Msg
				}
				break
			}
		}
		if want == nil {
			continue
		}
		got, _ := l.dispatch(t.Context(), m.Msg)
		if string(got) != string(want) {
			t.Errorf("%q: we answer %q, open-vm-tools %q", m.Msg, got, want)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d TCLO exchanges in the golden file", checked)
	}
}
