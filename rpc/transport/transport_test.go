package transport

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/rpc/sockchan"
)

func TestParseAndSelect(t *testing.T) {
	for in, want := range map[string]string{"": "auto", "auto": "auto", "vsock": "vsock", "backdoor": "backdoor", "unix:/tmp/x/": "unix:/tmp/x"} {
		m, err := Parse(in)
		if err != nil || m.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, m, err, want)
		}
	}
	for _, bad := range []string{"unix:", "tcp:1", "VSOCK"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if m, _ := Select("", "unix:/d"); m.String() != "unix:/d" {
		t.Errorf("env not used: %v", m)
	}
	if m, _ := Select("vsock", "unix:/d"); m.Kind != VSock {
		t.Errorf("flag does not win: %v", m)
	}
	if _, err := Select("", "bogus"); err == nil {
		t.Error("bad env accepted")
	}
}

// TestAutoOutsideVMware: on these machines auto must refuse before opening
// any socket or touching the backdoor.
func TestAutoOutsideVMware(t *testing.T) {
	if backdoor.Detect() == nil {
		t.Fatal("this test must not run on a VMware VM: auto would dial the real VMX")
	}
	tr := New(Config{Mode: Mode{Kind: Auto}})
	if _, err := tr.DialRPCI(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
		t.Fatalf("DialRPCI = %v, want ErrNotVMware", err)
	}
	if _, err := tr.DialTCLO(t.Context()); !errors.Is(err, backdoor.ErrNotVMware) {
		t.Fatalf("DialTCLO = %v, want ErrNotVMware", err)
	}
	sim := New(Config{Mode: Mode{Kind: VSock}, Simulated: true})
	if _, err := sim.DialRPCI(t.Context()); !errors.Is(err, errSimulated) {
		t.Fatalf("vsock under vmxsim = %v", err)
	}
}

func TestUnixOneShot(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "rpci.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan datamap.Packet, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		content, _ := datamap.ReadFrame(c, datamap.MaxGuestFrame)
		p, _ := datamap.DecodePacket(content)
		got <- p
	}()
	tr := New(Config{Mode: Mode{Kind: Unix, Dir: dir}})
	ch, err := tr.DialRPCIOneShot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Send(t.Context(), []byte("log x")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; !p.FastClose || string(p.Payload) != "log x" {
		t.Fatalf("packet %+v", p)
	}
	// An RPCI reply is waited for in the kernel (sockchan.WaitInKernel).
	if sc, ok := ch.(*sockchan.Conn); !ok || !sc.WaitInKernel {
		t.Fatalf("unix RPCI channel %T does not wait in the kernel", ch)
	}
	if _, err := New(Config{Mode: Mode{Kind: Unix, Dir: t.TempDir()}}).DialTCLO(t.Context()); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}
