package sim

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/backdoor"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// rpci sends one RPCI over dir's rpci.sock, as a guest with --rpc unix:DIR
// does, and returns the reply.
func rpci(t *testing.T, dir, req string) string {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(dir, vmxsim.RPCISocket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte(req), HasPayload: true})))
	content, err := datamap.ReadFrame(c, datamap.MaxGuestFrame)
	if err != nil {
		t.Fatal(err)
	}
	p, err := datamap.DecodePacket(content)
	if err != nil {
		t.Fatal(err)
	}
	return string(p.Payload)
}

// TestSimServes: once Start returns, the sockets answer: an RPCI over
// rpci.sock, the configured guestinfo, the share and the backdoor in ctl
// state, the backdoor's ctl routes; Close removes the sockets and leaves
// no goroutine (TestMain checks).
func TestSimServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	s, err := New(Options{
		Dir:       dir,
		Core:      vmxsim.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: t.TempDir()}}},
		GuestInfo: [][2]string{{"vm.id", "42"}},
		Backdoor:  &backdoor.Options{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := rpci(t, dir, "info-get guestinfo.vm.id"); r != "1 42" {
		t.Errorf("info-get = %q", r)
	}
	ctl := vmxsim.NewCtl(dir)
	st, err := ctl.State(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Backdoor == nil || len(st.HGFS.Shares) != 1 || st.Log != filepath.Join(dir, vmxsim.LogFile) {
		t.Errorf("state: backdoor %v, shares %+v, log %q", st.Backdoor, st.HGFS.Shares, st.Log)
	}
	if b, err := ctl.BackdoorReset(t.Context()); err != nil || !strings.Contains(string(b), `"channels": 0`) {
		t.Errorf("backdoor reset: %s %v", b, err)
	}
	if _, err := ctl.VSphereURL(t.Context()); err == nil {
		t.Error("a vSphere URL without the front end")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{vmxsim.TCLOSocket, vmxsim.RPCISocket, vmxsim.CtlSocket} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s left behind", name)
		}
	}
}

// TestSimStartFails: a directory another simulator serves is refused, and
// the failed Start leaves nothing running.
func TestSimStartFails(t *testing.T) {
	dir := t.TempDir()
	first, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := New(Options{Dir: dir, Backdoor: &backdoor.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second simulator on one directory: %v", err)
	}
	second.Close()
	if r := rpci(t, dir, "info-get guestinfo.x"); r != vmxsim.ReplyNoValue {
		t.Errorf("the first simulator after the second failed: %q", r)
	}
}
