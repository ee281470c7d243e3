package vmxsim

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/vmxsim/vmx"
)

func newCore(t *testing.T, opts Options) *Core {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRPCIHandlers(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "vmware.log")
	c := newCore(t, Options{LogPath: logPath})
	ctx := t.Context()
	tests := []struct{ req, want string }{
		{"info-set guestinfo.a one two\x00", "1 "},
		{"info-get guestinfo.a", "1 one two"},
		{"info-get guestinfo.a\x00", "1 one two"},
		{"info-get guestinfo.b", "0 No value found"},
		{"info-set guestinfo.empty ", "1 "},
		{"info-get guestinfo.empty", "1 "},
		{"info-set novalue", "0 Two and exactly two arguments expected"},
		{"info-set other.key v", "0 Permission denied"},
		{"info-get guestinfo.", "0 Permission denied"},
		{"tools.set.version 13344\x00", "1 "},
		{"tools.set.version x", "0 Invalid version"},
		{"tools.set.versiontype 13344 4\x00", "1 "},
		{"tools.set.versiontype 1", "0 Invalid arguments"},
		{"tools.capability.statechange ", "1 "},
		{"tools.capability.hgfs_server toolbox 1\x00", "1 "},
		{"tools.capability.hgfs_server toolbox 0\x00", "1 "},
		{"tools.capability.softpowerop_retry", "1 "},
		{"vmx.capability.unified_loop toolbox\x00", "1 "},
		{"tools.os.statechange.status 1 2\x00", "1 "},
		{"tools.os.statechange.status 7 2", "0 Invalid arguments"},
		{"SetGuestInfo  1 myhost\x00", "1 "},
		{"SetGuestInfo  7 12345\x00", "1 "},
		{"SetGuestInfo  99 x", "0 Invalid arguments"},
		{"SetGuestInfo  x", "0 Invalid arguments"},
		{"SetGuestInfo", "0 Invalid arguments"},
		{"log line one\x00", "1 "},
		{"frobnicate", "0 Unknown command"},
		{"\x00\xff", "0 Unknown command"},
		{"", "0 Unknown command"},
	}
	for _, tt := range tests {
		if got := string(c.RPCI(ctx, Caller{}, []byte(tt.req))); got != tt.want {
			t.Errorf("RPCI(%q) = %q, want %q", tt.req, got, tt.want)
		}
	}
	if got := c.RPCI(ctx, Caller{}, make([]byte, MaxGuestMessage+1)); string(got) != "0 Message too large" {
		t.Errorf("oversized = %q", got)
	}
	s := c.State()
	if s.Tools.Version != "13344" || s.Tools.VersionType != "4" {
		t.Errorf("tools = %+v", s.Tools)
	}
	wantCaps := []string{"tools.capability.statechange ", "tools.capability.hgfs_server toolbox 0", "tools.capability.softpowerop_retry"}
	if strings.Join(s.Capabilities, "|") != strings.Join(wantCaps, "|") {
		t.Errorf("capabilities %q, want %q", s.Capabilities, wantCaps)
	}
	if s.Power.LastStateChange == nil || *s.Power.LastStateChange != (StateChange{State: 2, Success: true}) {
		t.Errorf("power = %+v", s.Power.LastStateChange)
	}
	if s.Guest.HostName != "myhost" || s.Guest.Uptime != 12345 {
		t.Errorf("guest = %+v", s.Guest)
	}
	if s.Guestinfo["a"] != "one two" {
		t.Errorf("guestinfo = %v", s.Guestinfo)
	}
	raw, _ := os.ReadFile(logPath)
	if !strings.Contains(string(raw), "| vcpu-0| I125: Guest: line one\n") {
		t.Errorf("vmware.log:\n%s", raw)
	}
}

// fakeGuest answers TCLO commands on the guest end of a pipe.
func fakeGuest(t *testing.T, conn net.Conn, answer func(cmd string) string) {
	for {
		content, err := datamap.ReadFrame(conn, 1<<20)
		if err != nil {
			return
		}
		p, err := datamap.DecodePacket(content)
		if err != nil {
			t.Errorf("guest got bad packet: %v", err)
			return
		}
		reply := answer(string(p.Payload))
		if reply == "" {
			continue // stay silent
		}
		conn.Write(datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte(reply), HasPayload: true})))
	}
}

// TestStateTrap: ctl state has the trap's counters only once the trap
// reports them (vmxsim run), read afresh at every State.
func TestStateTrap(t *testing.T) {
	c := newCore(t, Options{LogPath: filepath.Join(t.TempDir(), "vmware.log")})
	if st := c.State(); st.Trap != nil {
		t.Fatalf("trap counters without a trap: %+v", st.Trap)
	}
	var stops uint64
	c.ReportTrap(func() vmx.TrapStats {
		stops++
		return vmx.TrapStats{Stops: stops, Seccomp: map[string]uint64{"connect": 1}}
	})
	c.State()
	st := c.State()
	if st.Trap == nil || st.Trap.Stops != 2 || st.Trap.Seccomp["connect"] != 1 {
		t.Fatalf("trap counters: %+v", st.Trap)
	}
}

// TestOnChange: every change of what State reports under Tools,
// Power.State and Guest calls the OnChange watchers (each of them), and
// a refused message does not.
func TestOnChange(t *testing.T) {
	c := newCore(t, Options{})
	ctx := t.Context()
	var a, b int
	c.OnChange(func() { a++ })
	c.OnChange(func() { b++ })
	step := func(what string, f func()) {
		t.Helper()
		before := a
		f()
		if a == before || a != b {
			t.Errorf("%s: watchers called %d and %d times in all, %d before", what, a, b, before)
		}
	}
	rpci := func(req string) func() {
		return func() {
			if r := string(c.RPCI(ctx, Caller{}, []byte(req))); r != "1 " {
				t.Errorf("%q: %q", req, r)
			}
		}
	}
	step("tools.set.version", rpci("tools.set.version 13344"))
	step("tools.set.versiontype", rpci("tools.set.versiontype 13344 4"))
	step("SetGuestInfo", rpci("SetGuestInfo  1 vm1\x00"))
	step("power off", func() { c.SetPowerState(PoweredOff) })
	step("power on", func() { c.SetPowerState(PoweredOn) })
	step("ClearTools", c.ClearTools)
	before := a
	c.RPCI(ctx, Caller{}, []byte("tools.set.version x"))
	c.SetPowerState(PoweredOn)
	if a != before {
		t.Errorf("a refused version and an unchanged power state called the watchers %d times", a-before)
	}
}
