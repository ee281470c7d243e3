package vmxsim

import (
	"context"
	"fmt"
)

// VM power states, as vSphere names them.
const (
	PoweredOn  = "poweredOn"
	PoweredOff = "poweredOff"
	Suspended  = "suspended"
)

// PowerOps maps `vmxsim ctl power OP` to the TCLO command the VMX sends.
var PowerOps = map[string]string{
	"halt":    "OS_Halt",
	"reboot":  "OS_Reboot",
	"poweron": "OS_PowerOn",
	"resume":  "OS_Resume",
	"suspend": "OS_Suspend",
}

// PowerState returns the VM's power state (poweredOn unless a vSphere
// client changed it).
func (c *Core) PowerState() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.power == "" {
		return PoweredOn
	}
	return c.power
}

// SetPowerState changes the VM's power state. Leaving poweredOn clears
// the tools state and the guest info, as the VMX does at power-off (the
// guest is gone, its version, capabilities and addresses with it), and
// closes the guest's channel;
// while not powered on, new TCLO channels are refused.
func (c *Core) SetPowerState(state string) {
	c.mu.Lock()
	old := c.power
	if old == "" {
		old = PoweredOn
	}
	c.power = state
	if old != state && state == PoweredOn {
		// As the VMX does: the tools hear of the transition once they
		// are back.
		c.pendingPower = "OS_PowerOn"
		if old == Suspended {
			c.pendingPower = "OS_Resume"
		}
	}
	c.mu.Unlock()
	if old == state {
		return
	}
	c.log.Host("VMX: power state %s -> %s", old, state)
	if state != PoweredOn {
		c.ClearTools()
		c.clearGuestInfo()
	}
	c.changed()
}

// PowerOp sends the TCLO command of a power operation (halt, reboot,
// poweron, resume, suspend) and returns the guest's reply.
func (c *Core) PowerOp(ctx context.Context, op string) ([]byte, error) {
	cmd, ok := PowerOps[op]
	if !ok {
		return nil, fmt.Errorf("vmxsim: unknown power operation %q (want halt, reboot, poweron, resume or suspend)", op)
	}
	if st := c.PowerState(); st != PoweredOn {
		if op != "poweron" && op != "resume" {
			return nil, fmt.Errorf("vmxsim: the VM is %s", st)
		}
		// Power the VM on; OS_PowerOn (or OS_Resume) reaches the tools
		// when they connect.
		c.SetPowerState(PoweredOn)
		return []byte("VM powered on; " + cmd + " is sent when the tools connect"), nil
	}
	return c.SendTCLO(ctx, cmd)
}
