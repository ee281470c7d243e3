package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/report"
	"github.com/govmtools/govmtools/internal/netnstest"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/govmtools/govmtools/vmxsim"
)

// envGuestInfoHelper makes the test binary act as the guest info reporter
// (TestGuestInfoHelperProcess) until SIGTERM. Phase 2 replaces it with
// vmtoolsd itself.
const envGuestInfoHelper = "GOVMTOOLS_GUESTINFO_HELPER"

// TestGuestInfoHelperProcess is not a test: run with the environment
// variable set (inside a namespace, by ip netns exec), it runs the
// reporter against $GOVMTOOLS_RPC with no name patterns and a one-hour
// resync, so only netlink events can explain a quick update.
func TestGuestInfoHelperProcess(t *testing.T) {
	if os.Getenv(envGuestInfoHelper) != "1" {
		t.Skip("helper process for TestGuestInfoNetns")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mode, err := transport.Select("", os.Getenv(transport.EnvRPC))
	if err != nil {
		t.Fatal(err)
	}
	tr := transport.New(transport.Config{Mode: mode})
	client := &rpc.Client{Dial: tr.DialRPCI}
	defer client.Close()
	nl := guestinfo.NewNetlink()
	defer nl.Close()
	cfg := guestinfo.DefaultConfig()
	cfg.ExcludeNICs = []string{} // kernel facts alone must leave docker0 out
	cfg.PollInterval = time.Hour
	r := &report.Reporter{
		Sender:  client,
		Source:  &guestinfo.Collector{Sys: &guestinfo.System{}, Net: nl},
		Watcher: nl,
		Config:  func() guestinfo.Config { return cfg },
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func requireNetns(t *testing.T) {
	t.Helper()
	ok, what := netnstest.Available()
	testutil.Require(t, ok, "network namespaces", what)
}

// startReporter runs the helper inside ns against sim.
func startReporter(t *testing.T, ns *netnstest.NS, sim *testutil.Sim) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(exe, "-test.run=^TestGuestInfoHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envGuestInfoHelper+"=1", transport.EnvRPC+"="+sim.Mode())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reporter: %v\n%s", err, out.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("reporter did not stop on SIGTERM:\n%s", out.String())
		}
		if t.Failed() {
			t.Logf("reporter output:\n%s", out.String())
		}
	})
}

func nicIPs(st vmxsim.State, mac string) []string {
	for _, n := range st.Guest.NICs {
		if n.MAC == mac {
			return n.IPs
		}
	}
	return nil
}

func TestGuestInfoNetns(t *testing.T) {
	requireNetns(t)
	scene, err := netnstest.NewScene(fmt.Sprintf("gi%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scene.Delete)
	sim := testutil.StartSim(t)
	ctl := vmxsim.NewCtl(sim.Dir)
	startReporter(t, scene.VM, sim)

	state := func() vmxsim.State {
		st, err := ctl.State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	want := []string{netnstest.SceneIPv4, netnstest.SceneVIP, netnstest.SceneIPv6}
	testutil.WaitFor(t, 20*time.Second, "eth0 with its three addresses in ctl state", func() bool {
		ips := nicIPs(state(), netnstest.SceneMAC)
		return len(ips) >= 3 && slices.Equal(ips[:3], want)
	})
	st := state()
	if st.Guest.IPAddress != "198.51.100.10" {
		t.Errorf("ipAddress %q", st.Guest.IPAddress)
	}
	if len(st.Guest.NICs) != 1 {
		t.Errorf("NICs %+v: only eth0 belongs to the VM", st.Guest.NICs)
	}
	for _, n := range st.Guest.NICs {
		for _, ip := range n.IPs {
			if strings.HasPrefix(ip, "203.0.113.") {
				t.Errorf("bridge address %s reported", ip)
			}
		}
	}
	if !slices.ContainsFunc(st.Guest.Routes, func(r vmxsim.GuestRoute) bool {
		return r.Dest == "0.0.0.0/0" && r.Gateway == netnstest.SceneGateway && r.NIC == 0
	}) {
		t.Errorf("default route missing: %+v", st.Guest.Routes)
	}
	if st.Guest.HostName == "" || st.Guest.Uptime == 0 || st.Guest.OSShortName == "" || st.Guest.DNS == nil {
		t.Errorf("hostname, uptime, OS, DNS: %+v", st.Guest)
	}

	// A new address shows up through netlink: the resync is an hour away.
	if err := scene.VM.IP("addr", "add", "198.51.100.11/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the added address", func() bool {
		return slices.Contains(nicIPs(state(), netnstest.SceneMAC), "198.51.100.11/24")
	})

	// A thousand container interfaces: still only eth0, and changes still
	// arrive.
	if err := scene.AddInterfaces(1000); err != nil {
		t.Fatal(err)
	}
	if err := scene.VM.IP("addr", "add", "198.51.100.12/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the address added after 1,000 interfaces", func() bool {
		return slices.Contains(nicIPs(state(), netnstest.SceneMAC), "198.51.100.12/24")
	})
	st = state()
	if len(st.Guest.NICs) != 1 || st.Guest.IPAddress != "198.51.100.10" {
		t.Fatalf("with 1,000 interfaces: %d NICs, ipAddress %q", len(st.Guest.NICs), st.Guest.IPAddress)
	}
	// Removing an address is reported too.
	if err := scene.VM.IP("addr", "del", netnstest.SceneVIP, "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the VIP removed", func() bool {
		return !slices.Contains(nicIPs(state(), netnstest.SceneMAC), netnstest.SceneVIP)
	})
}
