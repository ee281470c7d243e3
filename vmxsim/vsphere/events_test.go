package vsphere

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/types"
)

// pingGuest is a guest TCLO channel in process that answers every
// command until it is told to fall silent; then it answers nothing
// until the exchange gives up.
type pingGuest struct {
	mu     sync.Mutex
	silent bool
	done   chan struct{}
}

func (g *pingGuest) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	g.mu.Lock()
	silent := g.silent
	g.mu.Unlock()
	if silent {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-g.done:
			return nil, fmt.Errorf("closed")
		}
	}
	if string(cmd) == "reset" {
		return []byte("OK ATR toolbox"), nil
	}
	return []byte("OK "), nil
}

func (g *pingGuest) Done() <-chan struct{} { return g.done }
func (g *pingGuest) Close() error          { return nil }

// runFrontEnd starts a front end of c and its Run, both ended when the
// test is (before c, when c's Cleanup was registered first).
func runFrontEnd(t *testing.T, c *vmxsim.Core) *FrontEnd {
	t.Helper()
	v, err := New(t.Context(), c, Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	var run sync.WaitGroup
	run.Go(func() { v.Run(rctx) })
	t.Cleanup(func() { stop(); run.Wait(); v.Close() })
	return v
}

// waitProp waits, with WaitForUpdates (no polling on the client's side
// either), until the VM's property path has the value want ("" also
// matches an unset property).
func waitProp(t *testing.T, pc *property.Collector, vm types.ManagedObjectReference, path string, want any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var last any
	err := property.Wait(ctx, pc, vm, []string{path}, func(changes []types.PropertyChange) bool {
		for _, c := range changes {
			if c.Name == path {
				last = c.Val
				if fmt.Sprint(c.Val) == fmt.Sprint(want) || c.Val == nil && want == "" {
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%s = %v, want %v: %v", path, last, want, err)
	}
}

// TestVSphereEventDriven: the front end reads the core only when it is
// told to. Idle without tools it reads nothing at all; a tools version,
// a NIC info report, a bound tools channel, the heartbeat's colour as a
// silent guest's pings go unanswered (told by the heartbeat's timer, not
// by the core), a client's power-off and the core's power-on each reach
// the other side; with tools bound and pings answered it only looks at
// the heartbeat, without reading State. The front end has no polling
// interval at all: a change not propagated by an event never shows.
func TestVSphereEventDriven(t *testing.T) {
	ctx := t.Context()
	// Pings far enough apart that a stalled goroutine of a loaded
	// machine does not turn the heartbeat yellow (two intervals).
	const ping = 250 * time.Millisecond
	c, err := vmxsim.New(vmxsim.Options{PingInterval: ping, ExchangeTimeout: time.Minute, ToolsTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v := runFrontEnd(t, c)
	client, err := govmomi.NewClient(ctx, v.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	pc := property.DefaultCollector(client.Client)
	testutil.WaitFor(t, 10*time.Second, "the first sync", func() bool { return v.reads.Load() >= 2 })

	// Idle, no tools: what the old 200 ms poll read 5 times a second
	// is not read at all.
	reads := v.reads.Load()
	time.Sleep(time.Second)
	if n, looks := v.reads.Load()-reads, v.looks.Load(); n != 0 || looks != 0 {
		t.Fatalf("idle without tools: %d reads of the core, %d heartbeat looks", n, looks)
	}

	if r := string(c.RPCI(ctx, vmxsim.Caller{}, []byte("tools.set.versiontype 12389 4"))); r != "1 " {
		t.Fatalf("tools.set.versiontype: %q", r)
	}
	waitProp(t, pc, v.VM(), "guest.toolsVersion", "12389")
	if r := string(c.RPCI(ctx, vmxsim.Caller{}, infoproto.BinaryMessage(infoproto.InfoIPAddressV3, goldenNicInfo(t)))); r != "1 " {
		t.Fatalf("SetGuestInfo: %q", r)
	}
	waitProp(t, pc, v.VM(), "guest.ipAddress", "198.51.100.10")

	g := &pingGuest{done: make(chan struct{})}
	var served sync.WaitGroup
	served.Go(func() { c.ServeTCLO(ctx, g) })
	closed := false
	closeGuest := func() {
		if !closed {
			close(g.done)
			served.Wait()
			closed = true
		}
	}
	defer closeGuest()
	waitProp(t, pc, v.VM(), "guest.toolsRunningStatus", types.VirtualMachineToolsRunningStatusGuestToolsRunning)
	waitProp(t, pc, v.VM(), "guestHeartbeatStatus", types.ManagedEntityStatusGreen)

	// Bound and answering: heartbeat looks only, about one every ping
	// interval or two, and no read of State.
	reads, looks := v.reads.Load(), v.looks.Load()
	time.Sleep(12 * ping)
	if n := v.reads.Load() - reads; n != 0 {
		t.Errorf("tools bound and answering: %d reads of the core in 12 ping intervals", n)
	}
	if n := v.looks.Load() - looks; n == 0 || n > 24 {
		t.Errorf("tools bound and answering: %d heartbeat looks in 12 ping intervals", n)
	}

	// Silent: nothing happens in the core; the heartbeat's timer turns
	// the colour yellow, then red.
	g.mu.Lock()
	g.silent = true
	g.mu.Unlock()
	waitProp(t, pc, v.VM(), "guestHeartbeatStatus", types.ManagedEntityStatusYellow)
	waitProp(t, pc, v.VM(), "guestHeartbeatStatus", types.ManagedEntityStatusRed)
	closeGuest()

	// A client's power-off reaches the core; the core's power-on the VM.
	task, err := object.NewVirtualMachine(client.Client, v.VM()).PowerOff(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the core powered off", func() bool { return c.PowerState() == vmxsim.PoweredOff })
	waitProp(t, pc, v.VM(), "guest.ipAddress", "")
	waitProp(t, pc, v.VM(), "guest.toolsRunningStatus", types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
	c.SetPowerState(vmxsim.PoweredOn)
	waitProp(t, pc, v.VM(), "runtime.powerState", types.VirtualMachinePowerStatePoweredOn)
}
