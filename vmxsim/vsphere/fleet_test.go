package vsphere

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// TestFleetMirrorsEachCore: one front end with three VMs, each mirroring
// its own core. Guest info fed to the second core shows on the second VM
// only; an extraConfig reconfigure of the third VM sets the variable in
// the third core only; ShutdownGuest on the first VM (its core has no
// tools) is ToolsUnavailable; a container view of the one endpoint lists
// all three VMs, mirrored by RunAll.
func TestFleetMirrorsEachCore(t *testing.T) {
	ctx := t.Context()
	cores := []*vmxsim.Core{newCore(t), newCore(t), newCore(t)}
	first, err := New(ctx, cores[0], Options{Addr: "127.0.0.1:0", VMName: "vm-0001"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	vms := []*FrontEnd{first}
	for i, name := range []string{"vm-0002", "vm-0003"} {
		v, err := first.AddVM(ctx, cores[i+1], VMOptions{Name: name, NICs: []string{"00:50:56:aa:bb:01"}})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		vms = append(vms, v)
	}
	if got := first.VMs(); len(got) != 3 || got[2] != vms[2] {
		t.Fatalf("VMs() = %d", len(got))
	}
	if r := string(cores[1].RPCI(ctx, vmxsim.Caller{}, infoproto.BinaryMessage(infoproto.InfoIPAddressV3, goldenNicInfo(t)))); r != "1 " {
		t.Fatalf("SetGuestInfo: %q", r)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { first.RunAll(runCtx) })
	defer func() { stop(); wg.Wait() }()

	client, err := govmomi.NewClient(ctx, first.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	m := view.NewManager(client.Client)
	cv, err := m.CreateContainerView(ctx, client.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cv.Destroy(ctx)
	ips := map[string]string{}
	testutil.WaitFor(t, 10*time.Second, "the second VM's IP", func() bool {
		var all []mo.VirtualMachine
		if err := cv.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "guest.ipAddress", "guest.toolsRunningStatus"}, &all); err != nil {
			t.Fatal(err)
		}
		clear(ips)
		for _, vm := range all {
			ips[vm.Name] = vm.Guest.IpAddress
		}
		return ips["vm-0002"] != ""
	})
	if len(ips) != 3 || ips["vm-0002"] != "198.51.100.10" || ips["vm-0001"] != "" || ips["vm-0003"] != "" {
		t.Errorf("guest.ipAddress by VM: %v", ips)
	}

	spec := types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: "guestinfo.fleet", Value: "3"}}}
	task, err := object.NewVirtualMachine(client.Client, vms[2].VM()).Reconfigure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for i, c := range cores {
		if got, want := c.State().Guestinfo["fleet"], map[bool]string{true: "3"}[i == 2]; got != want {
			t.Errorf("core %d: guestinfo.fleet = %q, want %q", i, got, want)
		}
	}
	err = object.NewVirtualMachine(client.Client, vms[0].VM()).ShutdownGuest(ctx)
	if _, ok := soapFault(err).(types.ToolsUnavailable); !ok {
		t.Errorf("ShutdownGuest on a VM without tools: %v", err)
	}
	var vm mo.VirtualMachine
	if err := property.DefaultCollector(client.Client).RetrieveOne(ctx, vms[0].VM(), []string{"runtime.powerState"}, &vm); err != nil || vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Errorf("after a refused ShutdownGuest: %v %v", vm.Runtime.PowerState, err)
	}
}
