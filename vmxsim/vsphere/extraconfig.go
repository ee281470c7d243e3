package vsphere

import (
	"context"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// On vSphere the guestinfo.* keys of a VM's extraConfig (its .vmx) are the
// guestinfo variables the guest reads with info-get: an admin hands
// cloud-init its metadata with `govc vm.change -e guestinfo.KEY=VALUE`.
// The front end keeps the two together: the VM starts with the core's
// guestinfo (vmxsim --guestinfo) in its extraConfig, and a ReconfigVM_Task
// whose extraConfig names guestinfo.* keys sets them in the core before
// the task runs (a value of "" removes the key, as vSphere does), so the
// guest sees them as soon as the client's task is done.

// seedExtraConfig writes the core's guestinfo variables into the VM's
// extraConfig.
func (v *FrontEnd) seedExtraConfig(ctx context.Context, c *vim25.Client) error {
	gi := v.core.State().Guestinfo
	if len(gi) == 0 {
		return nil
	}
	keys := make([]string, 0, len(gi))
	for k := range gi {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var spec types.VirtualMachineConfigSpec
	for _, k := range keys {
		spec.ExtraConfig = append(spec.ExtraConfig, &types.OptionValue{Key: "guestinfo." + k, Value: gi[k]})
	}
	task, err := object.NewVirtualMachine(c, v.vm).Reconfigure(ctx, spec)
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

// applyExtraConfig sets the guestinfo.* keys of a reconfigure in the core.
func (v *FrontEnd) applyExtraConfig(req *types.ReconfigVM_Task) {
	for _, b := range req.Spec.ExtraConfig {
		ov := b.GetOptionValue()
		key, ok := strings.CutPrefix(ov.Key, "guestinfo.")
		if !ok || key == "" {
			continue
		}
		val, _ := ov.Value.(string)
		if val == "" {
			v.core.DeleteGuestInfoVar(key)
		} else {
			v.core.SetGuestInfoVar(key, val)
		}
		v.lg.Info("vsphere: guestinfo set through extraConfig", "key", ov.Key)
	}
}
