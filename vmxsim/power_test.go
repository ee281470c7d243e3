package vmxsim

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// TestPowerModel: a successful halt followed by the guest's channel going
// away powers the VM off and clears tools state; while off, channels and
// RPCIs are refused; power-on sends OS_PowerOn once the tools are back.
func TestPowerModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCore(t, Options{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var mu sync.Mutex
		var seen []string
		connect := func() (net.Conn, chan error) {
			host, guest := net.Pipe()
			go fakeGuest(t, guest, func(cmd string) string {
				mu.Lock()
				seen = append(seen, cmd)
				mu.Unlock()
				if cmd == "reset" {
					return "OK ATR toolbox"
				}
				return "OK "
			})
			done := make(chan error, 1)
			go func() { done <- c.ServeTCLOConn(ctx, host) }()
			synctest.Wait()
			return guest, done
		}
		guest, done := connect()
		c.RPCI(ctx, Caller{}, []byte("tools.set.versiontype 12352 4\x00"))
		c.RPCI(ctx, Caller{}, []byte("tools.capability.statechange "))
		if reply, err := c.PowerOp(ctx, "halt"); err != nil || string(reply) != "OK " {
			t.Fatalf("halt: %q %v", reply, err)
		}
		c.RPCI(ctx, Caller{}, []byte("tools.os.statechange.status 1 1\x00"))
		if c.PowerState() != PoweredOn {
			t.Fatal("powered off before the guest went away")
		}
		guest.Close()
		<-done
		if s := c.State(); s.Power.State != PoweredOff || s.Tools.Running || s.Tools.Version != "" || len(s.Capabilities) != 0 {
			t.Fatalf("after the guest halted: %+v %+v %q", s.Power, s.Tools, s.Capabilities)
		}
		if r := c.RPCI(ctx, Caller{}, []byte("log late\x00")); string(r) != "0 The VM is not powered on" {
			t.Fatalf("rpci while off: %q", r)
		}
		if _, err := c.PowerOp(ctx, "halt"); err == nil {
			t.Fatal("halt of a VM that is off")
		}
		if _, err := c.PowerOp(ctx, "bogus"); err == nil {
			t.Fatal("bogus op accepted")
		}
		// A guest connecting while off is refused at once.
		_, done = connect()
		if err := <-done; err == nil {
			t.Fatal("tclo channel accepted while off")
		}
		if reply, err := c.PowerOp(ctx, "poweron"); err != nil || c.PowerState() != PoweredOn {
			t.Fatalf("poweron: %q %v", reply, err)
		}
		mu.Lock()
		seen = nil
		mu.Unlock()
		guest, done = connect()
		mu.Lock()
		got := slices.Clone(seen)
		mu.Unlock()
		if len(got) == 0 || got[len(got)-1] != "OS_PowerOn" || got[len(got)-2] != "Capabilities_Register" {
			t.Fatalf("after power-on the tools got %q", got)
		}
		cancel()
		<-done
		guest.Close()
	})
}
