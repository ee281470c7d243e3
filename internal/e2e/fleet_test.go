package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/netnstest"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/sim"
)

// fleetVM is one VM's line in a `govc object.collect -json -type m`
// query of the whole inventory.
type fleetVM struct {
	Name, Tools, IP string
}

// govcFleet asks the front end once for every VM's name, tools running
// status and guest.ipAddress, as a vCenter user lists a fleet, keyed by
// VM name.
func govcFleet(t *testing.T, ctl *vmxsim.Ctl) map[string]fleetVM {
	t.Helper()
	out := govc(t, ctl, "object.collect", "-json", "-type", "m", "/", "name", "guest.toolsRunningStatus", "guest.ipAddress")
	objs, err := testutil.GovcCollected([]byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]fleetVM{}
	for _, o := range objs {
		vm := fleetVM{}
		vm.Name, _ = o["name"].(string)
		vm.Tools, _ = o["guest.toolsRunningStatus"].(string)
		vm.IP, _ = o["guest.ipAddress"].(string)
		got[vm.Name] = vm
	}
	return got
}

// TestFleet: `vmxsim serve --vms 5` is one vSphere front end with five
// VMs, each with its own simulated VMX in DIR/vm-NNNN. Two guests run,
// each our vmtoolsd in a network namespace of its own (eth0 a veth with
// its VM's MAC and a 10.77/16 address) against its VM's sockets, on the
// second and fourth VM. One govc query of the whole inventory must show
// exactly those two with tools running and each with its own guest's
// address, and the three others not running and without an address;
// each VM's `ctl state` agrees.
func TestFleet(t *testing.T) {
	requireNetns(t)
	fleet := testutil.StartSim(t, "--vms", "5", "--vsphere", "127.0.0.1:0")
	ctl := vmxsim.NewCtl(fleet.Dir)
	b, err := ctl.Do(t.Context(), "GET", "/vms", "")
	if err != nil {
		t.Fatal(err)
	}
	var vms []sim.FleetVM
	if err := json.Unmarshal(b, &vms); err != nil || len(vms) != 5 {
		t.Fatalf("/vms: %s %v", b, err)
	}
	want := map[string]fleetVM{}
	for i, vm := range vms {
		want[vm.Name] = fleetVM{Name: vm.Name, Tools: "guestToolsNotRunning"}
		if i%2 == 0 {
			continue
		}
		ip := fmt.Sprintf("10.77.0.%d", i+1)
		ns, err := netnstest.Create(fmt.Sprintf("fl%d-%d", os.Getpid(), i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Delete() })
		if err := ns.Batch([]string{
			"link add eth0 type veth peer name eth0p",
			"link set eth0 address " + vm.MAC,
			"addr add " + ip + "/16 dev eth0",
			"link set eth0 up",
			"link set eth0p up",
		}); err != nil {
			t.Fatal(err)
		}
		startVmtoolsdNetns(t, ns, &testutil.Sim{Dir: vm.Dir, Bin: fleet.Bin}, "")
		want[vm.Name] = fleetVM{Name: vm.Name, Tools: "guestToolsRunning", IP: ip}
	}
	testutil.Govc(t)
	var got map[string]fleetVM
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("govc showed %v\nwant %v", got, want)
		}
	})
	testutil.WaitFor(t, 30*time.Second, "govc to show the fleet's two guests", func() bool {
		got = govcFleet(t, ctl)
		return maps.Equal(got, want)
	})
	for i, vm := range vms {
		st := state(t, vmxsim.NewCtl(vm.Dir))
		if st.Tools.Running != (i%2 == 1) || st.Guest.IPAddress != want[vm.Name].IP {
			t.Errorf("%s: ctl state tools running %v, ip %q; want %+v", vm.Dir, st.Tools.Running, st.Guest.IPAddress, want[vm.Name])
		}
		// The VMX's commands (reset, Set_Option, pings) and the guest's
		// answers are counted; a VM without a guest exchanged none.
		if tc := st.TCLO; (i%2 == 1) != (tc.Commands > 0 && tc.Replies > 0) || tc.Replies > tc.Commands {
			t.Errorf("%s: TCLO messages %+v", vm.Dir, tc)
		}
	}
}
