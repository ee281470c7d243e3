// Package vsphere is the simulator's vSphere front end: govmomi's vcsim
// with one virtual machine that mirrors what the VMX core knows (tools
// status and version, heartbeat, power state, guest IP addresses, NICs,
// routes, DNS, OS and disks), so govc and other vSphere clients see what
// a real vCenter would show, and their guest power operations reach the
// guest as TCLO commands.
package vsphere

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/vmx"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// FrontEnd is the vSphere front end of a Core: govmomi's vcsim with one
// virtual machine that mirrors what the core knows, so govc and other
// vSphere clients see the tools status, the heartbeat and the power state
// a real vCenter would show, and their guest power operations
// (ShutdownGuest, RebootGuest) reach the guest as OS_Halt and OS_Reboot.
//
// Mirrors turn the core's State into property changes of the VM. The
// tools mirror is built in; features add theirs with AddMirror (the guest
// info mirror maps guest.ipAddress, guest.net, guest.hostName, ...).
// Only properties whose value changed are pushed, each as its own
// property path, so clients waiting in WaitForUpdates are woken. The
// mirrors run when the core tells of a change (Core.OnChange), when the
// heartbeat's colour is due to change (ToolsStatus.Until) and when a
// client changed the VM's power state, never by polling (events.go).
type FrontEnd struct {
	*inventory // shared by every VM of the front end (fleet.go)

	core    *vmxsim.Core
	vm      types.ManagedObjectReference
	proxy   types.ManagedObjectReference // guestPower, registered in the map
	snapper types.ManagedObjectReference // snapshotter, registered in the map
	primary bool                         // made by New: its Close stops the server
	lg      *slog.Logger
	mirrors []Mirror
	nics    map[string]vmNIC // the VM's virtual NICs by MAC

	mu     sync.Mutex
	pushed map[string]any // property path -> value last pushed

	lastVC, lastCore string // power states seen by syncPower

	events // what is to be synced, and when (events.go)

	ops       sync.WaitGroup // guest power operations and snapshots in flight
	opsCtx    context.Context
	cancelOps context.CancelFunc // ends the snapshots in flight (Run's end)
}

// Mirror maps the core's state to VM properties (path -> value). It runs
// after each change the core tells of, so it may read only what
// Core.OnChange covers (State's Tools, Power.State and Guest).
type Mirror func(s vmxsim.State) []types.PropertyChange

// Options configure the front end.
type Options struct {
	// Addr is HOST:PORT to listen on; port 0 picks a free one.
	Addr string
	// VMName is the VM's inventory name; "" means "govmtools-vm".
	VMName string
	// NICs are the MAC addresses of the VM's virtual NICs (vmxnet3
	// cards); guest.net entries with one of them are tied to its card.
	NICs   []string
	Logger *slog.Logger
}

// New starts vcsim (simulator.VPX with an empty inventory: one
// datacenter, one standalone host, no cluster and no VMs), creates one
// powered-on VM through an in-process vim25 client, hooks the guest power
// operations, and starts serving HTTPS on opts.Addr. Run the mirror with
// Run; Close stops the server.
func New(ctx context.Context, core *vmxsim.Core, opts Options) (*FrontEnd, error) {
	if opts.VMName == "" {
		opts.VMName = "govmtools-vm"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := simulator.VPX()
	m.Datacenter, m.Cluster, m.ClusterHost, m.Host, m.Machine, m.Portgroup = 1, 0, 0, 1, 0, 0
	m.Autostart = false
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("vsphere: %w", err)
	}
	c, err := vim25.NewClient(ctx, m.Service)
	if err != nil {
		m.Remove()
		return nil, fmt.Errorf("vsphere client: %w", err)
	}
	inv := &inventory{model: m, client: c, logger: opts.Logger, byRef: map[types.ManagedObjectReference]*FrontEnd{}}
	m.Map().AddHandler(powerWatch{inv})
	v, err := inv.addVM(ctx, core, VMOptions{Name: opts.VMName, NICs: opts.NICs})
	if err != nil {
		m.Remove()
		return nil, err
	}
	v.primary = true
	m.Map().Handler = inv.intercept
	g := v.installGuestOps(*c.ServiceContent.GuestOperationsManager)

	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: opts.Addr}
	v.server = m.Service.NewServer()
	m.Service.Handle("/guestFile", g) // the transfer URLs (guestxfer.go)
	return v, nil
}

// newVM creates the VM name with its NICs and guestinfo extraConfig in
// the inventory, and the front end that mirrors core into it.
func (inv *inventory) newVM(ctx context.Context, core *vmxsim.Core, opts VMOptions) (*FrontEnd, error) {
	v := &FrontEnd{inventory: inv, core: core, lg: inv.logger, pushed: map[string]any{}}
	v.mirrors = []Mirror{toolsMirror}
	v.opsCtx, v.cancelOps = context.WithCancel(context.Background())
	ref, err := createVM(ctx, inv.client, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("vsphere: create vm %s: %w", opts.Name, err)
	}
	v.vm = ref
	if v.nics, err = addNICs(ctx, inv.client, ref, opts.NICs); err != nil {
		return nil, fmt.Errorf("vsphere: NICs of %s: %w", opts.Name, err)
	}
	if err := v.seedExtraConfig(ctx, inv.client); err != nil {
		return nil, fmt.Errorf("vsphere: extraConfig of %s: %w", opts.Name, err)
	}
	v.AddMirror(v.guestMirror)
	reg := inv.model.Map()
	v.proxy = reg.Put(&guestPower{self: types.ManagedObjectReference{Type: "GovmtoolsGuestPower", Value: "guestpower-" + ref.Value}}).Reference()
	v.snapper = reg.Put(&snapshotter{self: types.ManagedObjectReference{Type: "GovmtoolsSnapshotter", Value: "snapshotter-" + ref.Value}, v: v}).Reference()
	core.OnChange(func() { v.mark(syncState) })
	return v, nil
}

func createVM(ctx context.Context, c *vim25.Client, name string) (types.ManagedObjectReference, error) {
	finder := find.NewFinder(c)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	pool, err := finder.DefaultResourcePool(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ds, err := finder.DefaultDatastore(ctx)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		NumCPUs:  2,
		MemoryMB: 2048,
		Files:    &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", ds.Name())},
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ref := info.Result.(types.ManagedObjectReference)
	vm := object.NewVirtualMachine(c, ref)
	ptask, err := vm.PowerOn(ctx)
	if err != nil {
		return ref, err
	}
	return ref, ptask.Wait(ctx)
}

// URL returns the SDK URL with the simulator's credentials.
func (v *FrontEnd) URL() *url.URL {
	u := *v.server.URL
	return &u
}

// VM returns the mirrored VM's reference.
func (v *FrontEnd) VM() types.ManagedObjectReference { return v.vm }

// AddMirror adds a state-to-properties mapping. Call it before Run.
func (v *FrontEnd) AddMirror(m Mirror) { v.mirrors = append(v.mirrors, m) }

// Run mirrors the core into the VM until ctx ends, then waits for guest
// power operations in flight. It keeps the core's power state following
// the VM's (powered off: tools state cleared, guest channels refused).
func (v *FrontEnd) Run(ctx context.Context) error {
	return runMirrors(ctx, []*FrontEnd{v})
}

// Close stops the HTTPS server and removes the model; on a VM added with
// AddVM it only ends that VM's operations in flight.
func (v *FrontEnd) Close() {
	v.cancelOps()
	if !v.primary {
		return
	}
	v.server.Close()
	v.model.Remove()
}

// context returns a fresh simulator context: vcsim's object locks are
// re-entrant per context, so concurrent updates must not share one.
func (v *FrontEnd) context() *simulator.Context {
	c := *v.model.Service.Context
	return &c
}

func (v *FrontEnd) vmObject() *simulator.VirtualMachine {
	return v.model.Map().Get(v.vm).(*simulator.VirtualMachine)
}

// powerState reads the VM's power state under its lock.
func (v *FrontEnd) powerState() types.VirtualMachinePowerState {
	vm := v.vmObject()
	var ps types.VirtualMachinePowerState
	v.model.Map().WithLock(v.context(), vm, func() { ps = vm.Runtime.PowerState })
	return ps
}

// syncPower keeps the VM's and the core's power states together: a
// vSphere client's power off, on, suspend or reset is applied to the core;
// a change of the core (the guest halted after Shut Down Guest) is shown
// on the VM.
func (v *FrontEnd) syncPower() {
	v.reads.Add(1)
	vc := powerStateName(v.powerState())
	core := v.core.PowerState()
	switch {
	case vc == core:
	case vc != v.lastVC:
		v.lg.Info("vsphere: power state set by a client", "state", vc)
		v.core.SetPowerState(vc)
		core = vc
	default:
		v.lg.Info("vsphere: power state set by the guest", "state", core)
		ps := types.VirtualMachinePowerStatePoweredOn
		switch core {
		case vmxsim.PoweredOff:
			ps = types.VirtualMachinePowerStatePoweredOff
		case vmxsim.Suspended:
			ps = types.VirtualMachinePowerStateSuspended
		}
		v.model.Map().AtomicUpdate(v.context(), v.vmObject(), []types.PropertyChange{
			{Name: "runtime.powerState", Val: ps},
			{Name: "summary.runtime.powerState", Val: ps},
		})
		vc = core
	}
	v.lastVC, v.lastCore = vc, core
}

func powerStateName(ps types.VirtualMachinePowerState) string {
	switch ps {
	case types.VirtualMachinePowerStatePoweredOff:
		return vmxsim.PoweredOff
	case types.VirtualMachinePowerStateSuspended:
		return vmxsim.Suspended
	}
	return vmxsim.PoweredOn
}

// mirror pushes the properties whose value changed, and arms the
// heartbeat's timer for the next change of colour.
func (v *FrontEnd) mirror() {
	v.reads.Add(1)
	s := v.core.State()
	v.armHeartbeat(s.Tools)
	var changes []types.PropertyChange
	v.mu.Lock()
	for _, m := range v.mirrors {
		for _, pc := range m(s) {
			if old, ok := v.pushed[pc.Name]; ok && reflect.DeepEqual(old, pc.Val) {
				continue
			}
			v.pushed[pc.Name] = pc.Val
			pc.Op = types.PropertyChangeOpAssign
			changes = append(changes, pc)
		}
	}
	v.mu.Unlock()
	if len(changes) == 0 {
		return
	}
	v.model.Map().AtomicUpdate(v.context(), v.vmObject(), changes)
}

// toolsMirror maps tools status, version and heartbeat.
func toolsMirror(s vmxsim.State) []types.PropertyChange {
	running := string(types.VirtualMachineToolsRunningStatusGuestToolsNotRunning)
	status := types.VirtualMachineToolsStatusToolsNotRunning
	guestState := "notRunning"
	if s.Tools.Running {
		running = string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		status = types.VirtualMachineToolsStatusToolsOk
		guestState = "running"
	}
	version, versionStatus, installType := "0", string(types.VirtualMachineToolsVersionStatusGuestToolsNotInstalled), ""
	if s.Tools.Version != "" {
		version = s.Tools.Version
		versionStatus = string(types.VirtualMachineToolsVersionStatusGuestToolsCurrent)
		if s.Tools.VersionType == "4" || version == "2147483647" {
			// open-vm-tools, or a hidden version: the guest manages it.
			versionStatus = string(types.VirtualMachineToolsVersionStatusGuestToolsUnmanaged)
		}
		switch s.Tools.VersionType {
		case "1":
			installType = string(types.VirtualMachineToolsInstallTypeGuestToolsTypeMSI)
		case "2":
			installType = string(types.VirtualMachineToolsInstallTypeGuestToolsTypeTar)
		case "3":
			installType = string(types.VirtualMachineToolsInstallTypeGuestToolsTypeOSP)
		case "4":
			installType = string(types.VirtualMachineToolsInstallTypeGuestToolsTypeOpenVMTools)
		default:
			installType = string(types.VirtualMachineToolsInstallTypeGuestToolsTypeUnknown)
		}
	}
	if s.Tools.Version == "" && s.Tools.Running {
		status = types.VirtualMachineToolsStatusToolsNotInstalled
	}
	hb := types.ManagedEntityStatus(s.Tools.Heartbeat)
	return []types.PropertyChange{
		{Name: "guest.toolsRunningStatus", Val: running},
		{Name: "guest.toolsStatus", Val: status},
		{Name: "guest.toolsVersion", Val: version},
		{Name: "guest.toolsVersionStatus", Val: versionStatus},
		{Name: "guest.toolsVersionStatus2", Val: versionStatus},
		{Name: "guest.toolsInstallType", Val: installType},
		{Name: "guest.guestState", Val: guestState},
		{Name: "guestHeartbeatStatus", Val: hb},
		{Name: "summary.quickStats.guestHeartbeatStatus", Val: hb},
		{Name: "summary.guest.toolsStatus", Val: status},
		{Name: "summary.guest.toolsRunningStatus", Val: running},
		{Name: "summary.guest.toolsVersionStatus", Val: versionStatus},
		{Name: "summary.guest.toolsVersionStatus2", Val: versionStatus},
	}
}

// intercept is the registry's method hook: a reconfigure's guestinfo.*
// extraConfig keys go to the core (extraconfig.go); guest power operations
// on the mirrored VM go to the guest as TCLO commands, without blocking the
// caller and without vcsim's own handlers powering the VM off at once.
func (v *FrontEnd) intercept(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if m.This != v.vm {
		return nil, nil
	}
	var cmd string
	switch m.Name {
	case "ReconfigVM_Task":
		if req, ok := m.Body.(*types.ReconfigVM_Task); ok {
			v.applyExtraConfig(req)
		}
		return nil, nil
	case "ShutdownGuest":
		cmd = "OS_Halt"
	case "RebootGuest":
		cmd = "OS_Reboot"
	case "CreateSnapshot_Task", "CreateSnapshotEx_Task":
		v.interceptSnapshot(m)
		return nil, nil
	default:
		return nil, nil
	}
	if v.core.PowerState() != vmxsim.PoweredOn {
		return nil, nil // vcsim answers InvalidPowerState
	}
	if !v.core.State().Tools.Running || !v.core.HasToolsChannel() {
		return nil, new(types.ToolsUnavailable)
	}
	// vcsim's own ShutdownGuest would power the VM off at once; send the
	// call to the proxy instead, which only acknowledges it. The VM
	// powers off when the guest halts.
	m.This = v.proxy
	v.ops.Go(func() {
		octx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		reply, err := v.core.SendTCLO(octx, cmd)
		v.lg.Info("vsphere: guest power operation", "method", m.Name, "tclo", cmd, "reply", string(reply), "err", err)
	})
	return nil, nil
}

// guestPower answers ShutdownGuest and RebootGuest once the command has
// been queued to the guest: the VM powers off or restarts when the guest
// does, not at once.
type guestPower struct{ self types.ManagedObjectReference }

func (g *guestPower) Reference() types.ManagedObjectReference { return g.self }

func (g *guestPower) ShutdownGuest(ctx *simulator.Context, req *types.ShutdownGuest) soap.HasFault {
	return &methods.ShutdownGuestBody{Res: new(types.ShutdownGuestResponse)}
}

func (g *guestPower) RebootGuest(ctx *simulator.Context, req *types.RebootGuest) soap.HasFault {
	return &methods.RebootGuestBody{Res: new(types.RebootGuestResponse)}
}

// HandleCtl adds the front end to the control API: GET /vsphere answers
// the SDK URL with credentials (for govc's GOVC_URL).
func (v *FrontEnd) HandleCtl(m vmx.CtlMux) {
	m.HandleCtl("GET /vsphere", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, v.URL().String())
	})
}
