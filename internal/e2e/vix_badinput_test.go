package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto/malformed"
	"github.com/govmtools/govmtools/vmxsim"
)

// maxRSSGrowth bounds how much vmtoolsd's resident set may grow between
// the 1,000th and the 10,000th malformed request, and maxRSSLateGrowth
// between the 5,000th and the 10,000th: the heap settles in the first
// few thousand (measured: 10.3 MiB at 1,000, 12.5 MiB from 5,000 to
// 40,000, flat), so a leak shows in the second half.
const (
	maxRSSGrowth     = 4 << 20
	maxRSSLateGrowth = 1 << 20
)

// TestBadInputVmtoolsd sends 10,000 malformed VIX requests in a row
// (malformed.Request: truncated, oversized, wrong lengths and counts,
// missing terminators, unknown opcodes) to the real vmtoolsd over TCLO:
// every reply is the protocol's error for its kind, vmtoolsd keeps
// running, and its VmRSS does not grow beyond maxRSSGrowth from request
// 1,000 to 10,000. A good request answers afterwards.
func TestBadInputVmtoolsd(t *testing.T) {
	sim := testutil.StartSim(t, "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	v := startVmtoolsd(t, sim, "", nil)
	waitToolsRunning(t, ctl, 10*time.Second)
	pid := v.cmd.Process.Pid
	var rss1k, rss5k int64
	for i := range 10000 {
		msg, want := malformed.Request(i, "nobody", "x")
		out, err := ctl.TCLO(t.Context(), string(vixproto.Relayed("bad", msg)))
		if err != nil {
			t.Fatalf("request %d (kind %d): %v", i, i%malformed.Kinds, err)
		}
		rest, ok := strings.CutPrefix(out, "OK ")
		e, _, _, _, perr := vixproto.ParseReply([]byte(rest))
		if !ok || perr != nil || e != want || !strings.HasSuffix(rest, "\x00") {
			t.Fatalf("request %d (kind %d): %q, want error %d", i, i%malformed.Kinds, out, want)
		}
		switch i + 1 {
		case 1000:
			rss1k = vmRSS(t, pid)
		case 5000:
			rss5k = vmRSS(t, pid)
		case 10000:
			rss := vmRSS(t, pid)
			t.Logf("vmtoolsd VmRSS: %d KiB after 1,000 malformed requests, %d KiB after 5,000, %d KiB after 10,000", rss1k>>10, rss5k>>10, rss>>10)
			t.Run("VmRSS", func(t *testing.T) {
				testutil.NotEmulated(t, testutil.EmulatedRSS)
				if rss-rss1k > maxRSSGrowth || rss-rss5k > maxRSSLateGrowth {
					t.Errorf("VmRSS grew by %d KiB from request 1,000 and %d KiB from 5,000 to 10,000", (rss-rss1k)>>10, (rss-rss5k)>>10)
				}
			})
		}
	}
	r, err := ctl.TCLO(t.Context(), vixproto.GetToolsProperties)
	if err != nil || !strings.HasPrefix(r, "OK 0 0 ") {
		t.Errorf("tools properties after the bad input: %q %v", r, err)
	}
}

// vmRSS is /proc/PID/status's VmRSS in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
