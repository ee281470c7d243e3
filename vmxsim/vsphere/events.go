package vsphere

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// The front end syncs a VM when something tells it to, never by polling:
// its core's OnChange (tools, power, guest info), the VM's heartbeat
// timer at the time the heartbeat's colour is due to change by time alone
// (ToolsStatus.Until), and vcsim's registry when a client's task changed
// the VM's power state (powerWatch). Each marks the VM with what is to be
// synced and queues it once; the one goroutine of Run (or RunAll) syncs
// the queued VMs. An idle VM without tools costs nothing; with tools
// bound, one heartbeat look (no State) every ping interval or two.

// What is to be synced (events.pending).
const (
	syncState     = 1 << iota // the core changed: power, then the mirrors
	syncPowerBit              // a client changed the VM's power state
	syncHeartbeat             // the heartbeat's colour is due to change
)

// events is a FrontEnd's share of the event machinery.
type events struct {
	pending atomic.Uint32               // sync* bits not yet synced; non-zero: queued
	queue   atomic.Pointer[mirrorQueue] // the running loop's, nil when none
	reads   atomic.Uint64               // syncs that read the core (State, power), for tests
	looks   atomic.Uint64               // heartbeat looks without State, for tests
	timer   *time.Timer                 // the heartbeat's, owned by the loop
	running bool                        // tools running, as last mirrored; owned by the loop
	colour  string                      // the heartbeat, as last mirrored; owned by the loop
}

// mirrorQueue is the VMs that runMirrors is to sync.
type mirrorQueue struct {
	mu    sync.Mutex
	dirty []*FrontEnd
	wake  chan struct{} // one buffered: something was queued
}

func (q *mirrorQueue) push(v *FrontEnd) {
	q.mu.Lock()
	q.dirty = append(q.dirty, v)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *mirrorQueue) take(spare []*FrontEnd) []*FrontEnd {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.dirty
	q.dirty = spare[:0]
	return out
}

// mark records what of v is to be synced and queues v unless it is
// queued already. It never blocks: the core calls it with its locks held.
func (v *FrontEnd) mark(bits uint32) {
	if v.pending.Or(bits) != 0 {
		return // queued, or synced in full when a loop starts
	}
	if q := v.queue.Load(); q != nil {
		q.push(v)
	}
}

// runMirrors syncs vms in full, then each VM when it is marked, until ctx
// ends; then it ends and waits for their guest operations in flight.
func runMirrors(ctx context.Context, vms []*FrontEnd) error {
	q := &mirrorQueue{wake: make(chan struct{}, 1)}
	defer func() {
		for _, v := range vms {
			v.queue.Store(nil)
			if v.timer != nil {
				v.timer.Stop()
			}
			v.cancelOps()
			v.ops.Wait()
		}
	}()
	for _, v := range vms {
		v.queue.Store(q)
	}
	for _, v := range vms {
		v.pending.Store(0) // what was marked before is covered by this sync
		v.sync(syncState | syncPowerBit)
	}
	var spare []*FrontEnd
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		}
		batch := q.take(spare)
		for _, v := range batch {
			v.sync(v.pending.Swap(0))
		}
		spare = batch
	}
}

// sync does what bits ask for.
func (v *FrontEnd) sync(bits uint32) {
	if bits&(syncState|syncPowerBit) != 0 {
		v.syncPower()
	}
	switch {
	case bits&syncState != 0:
		v.mirror()
	case bits&syncHeartbeat != 0:
		v.looks.Add(1)
		running, colour, until := v.core.Heartbeat()
		if running != v.running || colour != v.colour {
			v.mirror()
			return
		}
		v.armAt(until)
	}
}

// armHeartbeat notes the tools' status as mirrored and arms the timer for
// its next change by time alone.
func (v *FrontEnd) armHeartbeat(t vmxsim.ToolsStatus) {
	v.running, v.colour = t.Running, t.Heartbeat
	v.armAt(t.Until)
}

func (v *FrontEnd) armAt(until time.Time) {
	if until.IsZero() {
		if v.timer != nil {
			v.timer.Stop()
		}
		return
	}
	d := time.Until(until)
	if v.timer == nil {
		v.timer = time.AfterFunc(d, func() { v.mark(syncHeartbeat) })
		return
	}
	v.timer.Reset(d)
}

// powerWatch is a handler of vcsim's registry: a change of
// runtime.powerState on one of the inventory's VMs (a client's power
// task, or syncPower's own update) marks that VM.
type powerWatch struct{ inv *inventory }

func (w powerWatch) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "GovmtoolsPowerWatch", Value: "powerwatch"}
}

func (w powerWatch) PutObject(*simulator.Context, mo.Reference) {}

func (w powerWatch) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

// UpdateObject runs with the object's lock held: it only marks.
func (w powerWatch) UpdateObject(_ *simulator.Context, obj mo.Reference, changes []types.PropertyChange) {
	ref := obj.Reference()
	if ref.Type != "VirtualMachine" {
		return
	}
	for _, c := range changes {
		if c.Name == "runtime.powerState" {
			if v := w.inv.lookup(ref); v != nil {
				v.mark(syncPowerBit)
			}
			return
		}
	}
}
