package sim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/vsphere"
)

// TestFleetServes: a fleet of three VMs serves each VM's sockets in its
// own directory with its own core (an info-set on one VM is not seen by
// another), DIR/ctl.sock lists the VMs and answers the one front end's
// URL, as every VM's ctl.sock does, and Close removes every socket.
func TestFleetServes(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFleet(FleetOptions{Dir: dir, VMs: 3, VM: Options{GuestInfo: [][2]string{{"fleet", "yes"}}}, VSphere: &vsphere.Options{Addr: "127.0.0.1:0", VMName: "f"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		f.Close()
		t.Fatal(err)
	}
	defer f.Close()
	second := filepath.Join(dir, "vm-0002")
	if r := rpci(t, second, "info-set guestinfo.k two"); r != "1 " {
		t.Fatalf("info-set: %q", r)
	}
	for i, want := range []string{vmxsim.ReplyNoValue, "1 two", vmxsim.ReplyNoValue} {
		d := filepath.Join(dir, FleetDir(i))
		if r := rpci(t, d, "info-get guestinfo.k"); r != want {
			t.Errorf("%s: info-get guestinfo.k = %q, want %q", d, r, want)
		}
		if r := rpci(t, d, "info-get guestinfo.fleet"); r != "1 yes" {
			t.Errorf("%s: the configured guestinfo = %q", d, r)
		}
	}
	top := vmxsim.NewCtl(dir)
	b, err := top.Do(t.Context(), "GET", "/vms", "")
	if err != nil {
		t.Fatal(err)
	}
	var vms []FleetVM
	if err := json.Unmarshal(b, &vms); err != nil || len(vms) != 3 || vms[2] != (FleetVM{Dir: filepath.Join(dir, "vm-0003"), Name: "f-0003", MAC: "00:50:56:00:00:03"}) {
		t.Errorf("/vms: %s %v", b, err)
	}
	url, err := top.VSphereURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if u, err := vmxsim.NewCtl(second).VSphereURL(t.Context()); err != nil || u != url {
		t.Errorf("vm-0002's vSphere URL %q %v, the fleet's %q", u, err, url)
	}
	if len(f.VSphere.VMs()) != 3 {
		t.Errorf("front end VMs: %d", len(f.VSphere.VMs()))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", "*.sock"))
	if _, err := os.Stat(filepath.Join(dir, vmxsim.CtlSocket)); err == nil {
		left = append(left, "ctl.sock")
	}
	if len(left) > 0 {
		t.Errorf("sockets left: %v", left)
	}
}
