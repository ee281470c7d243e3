package vsphere

import (
	"context"
	"log/slog"
	"sync"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// A fleet: one front end (one vcsim model, one HTTPS endpoint, one
// inventory) with many VMs, each mirroring its own VMX core, as one
// vCenter manages the VMs of many hosts, each VM run by its own VMX. New
// makes the front end with its first VM; AddVM adds the others. Every
// VM's methods (power operations, reconfigure, snapshots, guest
// operations) reach its own core.

// inventory is what the VMs of one front end share.
type inventory struct {
	model  *simulator.Model
	server *simulator.Server
	client *vim25.Client // in process, for creating VMs
	logger *slog.Logger

	mu    sync.RWMutex
	byRef map[types.ManagedObjectReference]*FrontEnd
	order []*FrontEnd // in the order they were added
}

// VMOptions configure one VM of the front end.
type VMOptions struct {
	// Name is the VM's inventory name; it must be unique.
	Name string
	// NICs are the MAC addresses of its virtual NICs (see Options.NICs).
	NICs []string
}

// addVM creates a VM and registers it.
func (inv *inventory) addVM(ctx context.Context, core *vmxsim.Core, opts VMOptions) (*FrontEnd, error) {
	v, err := inv.newVM(ctx, core, opts)
	if err != nil {
		return nil, err
	}
	inv.mu.Lock()
	inv.byRef[v.vm] = v
	inv.order = append(inv.order, v)
	inv.mu.Unlock()
	return v, nil
}

// lookup returns the front end of the VM ref, or nil.
func (inv *inventory) lookup(ref types.ManagedObjectReference) *FrontEnd {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return inv.byRef[ref]
}

// intercept is the registry's method hook: a method on one of the VMs
// goes to that VM's front end (FrontEnd.intercept).
func (inv *inventory) intercept(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if v := inv.lookup(m.This); v != nil {
		return v.intercept(ctx, m)
	}
	return nil, nil
}

// AddVM creates one more powered-on VM in v's inventory, served by the
// same vcsim on the same URL, that mirrors core. Its Run mirrors only
// it; RunAll on any VM mirrors them all in one loop. Call it before the
// front end is used by clients.
func (v *FrontEnd) AddVM(ctx context.Context, core *vmxsim.Core, opts VMOptions) (*FrontEnd, error) {
	return v.inventory.addVM(ctx, core, opts)
}

// VMs returns every VM's front end, in the order they were added.
func (v *FrontEnd) VMs() []*FrontEnd {
	v.inventory.mu.RLock()
	defer v.inventory.mu.RUnlock()
	return append([]*FrontEnd(nil), v.inventory.order...)
}

// RunAll is Run for every VM of the inventory at once: one goroutine
// syncs the VMs that changed (events.go), so an idle fleet costs nothing
// but each bound guest's heartbeat check every ping interval or two.
func (v *FrontEnd) RunAll(ctx context.Context) error {
	return runMirrors(ctx, v.VMs())
}
