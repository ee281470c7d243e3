package hgfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// hostChannel is an RPCI channel to an in-process HGFS server, counting
// the requests in flight across every channel of one host.
type hostChannel struct {
	host     *countingHost
	holdsCPU bool
	reply    []byte
}

type countingHost struct {
	h        *hgfsd.Server
	mu       sync.Mutex
	inFlight int
	peak     int
}

func (c *hostChannel) Send(ctx context.Context, msg []byte) error {
	if !bytes.HasPrefix(msg, []byte("f ")) {
		return errors.New("not an HGFS request")
	}
	h := c.host
	h.mu.Lock()
	h.inFlight++
	h.peak = max(h.peak, h.inFlight)
	h.mu.Unlock()
	// The host's latency stays a real sleep: it is what lets requests
	// of several channels overlap, the thing the test counts.
	time.Sleep(50 * time.Microsecond)
	c.reply = h.h.RPCI(msg[2:])
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	return nil
}

func (c *hostChannel) Receive(ctx context.Context) ([]byte, error) { return c.reply, nil }
func (c *hostChannel) Close() error                                { return nil }

// cpuHolder is a hostChannel that says it holds its CPU for a call, as
// a backdoor channel does.
type cpuHolder struct{ hostChannel }

func (c *cpuHolder) HoldsCPU() bool { return true }

var _ rpc.CPUHolder = (*cpuHolder)(nil)

// TestFanOutOverCPUHoldingChannels: over channels that hold the CPU for
// a call (the backdoor) the pieces of one large write go out one at a
// time; over others (vsock, unix) on several channels at once. Either
// way the data arrives whole.
func TestFanOutOverCPUHoldingChannels(t *testing.T) {
	for _, holds := range []bool{false, true} {
		dir := t.TempDir()
		host := &countingHost{h: hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})}
		dial := func(ctx context.Context) (rpc.Channel, error) {
			if holds {
				return &cpuHolder{hostChannel{host: host}}, nil
			}
			return &hostChannel{host: host}, nil
		}
		tr := NewRPCTransport(dial, 4, nil)
		c, err := New(t.Context(), Config{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tr.FanOut(), map[bool]int{false: 4, true: 1}[holds]; got != want {
			t.Errorf("holdsCPU=%v: FanOut = %d, want %d", holds, got, want)
		}
		if tr.HoldsCPU() != holds {
			t.Errorf("holdsCPU=%v: HoldsCPU = %v after the session's requests", holds, tr.HoldsCPU())
		}
		f, err := c.Open(t.Context(), "s/big", OpenFlags{Mode: hgfsproto.OpenModeReadWrite, Create: hgfsproto.OpenFlagCreateSafe, Perm: 0o644})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 17 WRITEs
		host.mu.Lock()
		host.peak = 0
		host.mu.Unlock()
		if n, err := f.WriteAt(t.Context(), data, 0); err != nil || n != len(data) {
			t.Fatalf("holdsCPU=%v: write %d %v", holds, n, err)
		}
		host.mu.Lock()
		peak := host.peak
		host.mu.Unlock()
		if holds && peak != 1 {
			t.Errorf("over CPU-holding channels %d WRITEs were in flight at once, want 1", peak)
		}
		if !holds && peak < 2 {
			t.Errorf("over other channels the WRITEs never overlapped (peak %d)", peak)
		}
		f.Close(t.Context())
		c.Close(t.Context())
		if b, err := os.ReadFile(filepath.Join(dir, "big")); err != nil || !bytes.Equal(b, data) {
			t.Errorf("holdsCPU=%v: the host file differs (%v)", holds, err)
		}
	}
}
