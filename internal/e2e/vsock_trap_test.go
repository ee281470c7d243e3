package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// The vsock trap: under `vmxsim run` the programs' AF_VSOCK sockets are
// unix connections to the simulator (docs/vmxsim.md, "vsock under the
// trap"). These tests run ours and Debian's tools on that path.

// vmtoolsdCmd is one vmtoolsd to run under the trap: ours with --rpc auto,
// or Debian's with its plugins.
type vmtoolsdCmd struct {
	name string
	path string
	args []string
}

func vsockDaemons(t *testing.T) []vmtoolsdCmd {
	t.Helper()
	bin := testutil.Binaries(t)
	out := []vmtoolsdCmd{{"ours", filepath.Join(bin, "vmtoolsd"), []string{"--rpc", "auto", "--power-runner", "record:" + filepath.Join(t.TempDir(), "power"), "--conf-dir", t.TempDir()}}}
	p := testutil.Peer(t)
	work := t.TempDir()
	conf := filepath.Join(work, "tools.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("[logging]\nlog = true\nvmsvc.level = debug\nvmsvc.handler = file\nvmsvc.data = %s/vmsvc.log\n\n[guestinfo]\npoll-interval = 1\n", work)), 0o644)
	args := append(append([]string{}, p.Env...), "HOME="+work, p.Bin("vmtoolsd"), "-c", conf, "-p", p.PluginDir, "--common-path", p.CommonPluginDir)
	return append(out, vmtoolsdCmd{"debian", "/usr/bin/env", args})
}

// transports returns ctl state's per-transport counters.
func transports(st map[string]any) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	m, _ := st["transports"].(map[string]any)
	for k, v := range m {
		c := map[string]float64{}
		for ck, cv := range v.(map[string]any) {
			c[ck], _ = cv.(float64)
		}
		out[k] = c
	}
	return out
}

func bdCounters(st map[string]any) map[string]float64 {
	out := map[string]float64{}
	m, _ := st["backdoor"].(map[string]any)
	for k, v := range m {
		out[k], _ = v.(float64)
	}
	return out
}

// runDaemon starts d under tr, waits until the VMX shows tools running
// with a green heartbeat and cond holds on the state, and stops it.
func runDaemon(t *testing.T, tr *testutil.Trap, d vmtoolsdCmd, what string, cond func(st map[string]any) bool) map[string]any {
	t.Helper()
	pid, output := tr.Start(t, d.path, d.args...)
	defer func() {
		syscall.Kill(pid, syscall.SIGTERM)
		tr.Wait(t, pid)
		if t.Failed() {
			t.Logf("%s vmtoolsd output:\n%s", d.name, output())
		}
	}()
	var st map[string]any
	testutil.WaitFor(t, 30*time.Second, d.name+" vmtoolsd running, "+what, func() bool {
		st = tr.State(t)
		tools, _ := st["tools"].(map[string]any)
		return tools["running"] == true && tools["heartbeat"] == "green" && cond(st)
	})
	return st
}

// TestVSockTrapVMToolsd: ours and Debian's vmtoolsd run their TCLO and
// RPCI channels over vsock: ctl state counts them on vsock, and no
// backdoor message channel is ever opened (the backdoor serves only the
// VMware detection, LB calls).
func TestVSockTrapVMToolsd(t *testing.T) {
	for _, d := range vsockDaemons(t) {
		t.Run(d.name, func(t *testing.T) {
			tr := testutil.StartTrap(t, "--ping-interval", "200ms")
			st := runDaemon(t, tr, d, "over vsock", func(st map[string]any) bool {
				v := transports(st)["vsock"]
				return v["tclo"] >= 1 && v["rpci"] >= 3 && v["privileged"] >= 1
			})
			tp := transports(st)
			if b := tp["backdoor"]; b["rpci"] != 0 || b["tclo"] != 0 {
				t.Errorf("backdoor transport used: %v", b)
			}
			bd := bdCounters(st)
			for _, k := range []string{"opens", "hbOut", "hbIn", "rpciRoundTrips", "channels"} {
				if bd[k] != 0 {
					t.Errorf("backdoor %s = %v, want 0 (%v)", k, bd[k], bd)
				}
			}
			t.Logf("%s: vsock %v, backdoor LB calls %v", d.name, tp["vsock"], bd["lb"])
		})
	}
}

// TestVSockTrapFallback: when the VMX resets RPCI over vsock
// (--rpci-vsock=false) both vmtoolsds give up the vsock walk and use the
// backdoor for RPCI, keeping TCLO on vsock; with --no-vsock (socket fails
// with EAFNOSUPPORT) everything is on the backdoor.
func TestVSockTrapFallback(t *testing.T) {
	for _, d := range vsockDaemons(t) {
		t.Run(d.name+"/rpci-reset", func(t *testing.T) {
			tr := testutil.StartTrap(t, "--ping-interval", "200ms", "--rpci-vsock=false")
			st := runDaemon(t, tr, d, "RPCI on the backdoor", func(st map[string]any) bool {
				tp := transports(st)
				return tp["backdoor"]["rpci"] >= 3 && tp["vsock"]["tclo"] >= 1
			})
			tp := transports(st)
			// open-vm-tools gives up at the 8th reset, ours at the 9th.
			if tp["vsock"]["rpci"] != 0 || tp["vsock"]["resets"] < 8 {
				t.Errorf("vsock %v: want no RPCI and at least 8 resets", tp["vsock"])
			}
			t.Logf("%s: vsock %v, backdoor %v", d.name, tp["vsock"], tp["backdoor"])
		})
		t.Run(d.name+"/no-vsock", func(t *testing.T) {
			tr := testutil.StartTrap(t, "--ping-interval", "200ms", "--no-vsock")
			st := runDaemon(t, tr, d, "on the backdoor", func(st map[string]any) bool {
				tp := transports(st)
				return tp["backdoor"]["rpci"] >= 3 && tp["backdoor"]["tclo"] >= 1
			})
			if v, ok := transports(st)["vsock"]; ok {
				t.Errorf("vsock used under --no-vsock: %v", v)
			}
		})
	}
}

// TestVSockSecureRPC: on a host where info-get needs a privileged caller
// (--secure-rpc info-get), root's info-get over vsock (from port 1023)
// works, and as uid 65534 (no CAP_NET_BIND_SERVICE: the bind of 1023
// fails with EACCES and the walk connects unprivileged) ours fails exactly
// as Debian's: the same message, stream and exit code. Debian's
// vmware-rpctool never uses vsock, so it is refused even as root (a
// backdoor caller is never privileged); its vmtoolsd --cmd uses vsock.
func TestVSockSecureRPC(t *testing.T) {
	p := testutil.Peer(t)
	setpriv, err := exec.LookPath("setpriv")
	testutil.Require(t, err == nil, "setpriv (util-linux)", "apt-get install util-linux")
	tr := testutil.StartTrap(t, "--secure-rpc", "info-get", "--guestinfo", "x=secret")
	ours := filepath.Join(tr.Bin, "vmware-rpctool")
	nobody := []string{"--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all"}
	type res struct {
		out, err string
		code     int
	}
	run := func(env []string, path string, args ...string) res {
		o, e, c := tr.RunEnv(t, env, path, args...)
		return res{o, e, c}
	}
	get := "info-get guestinfo.x"
	if r := run(nil, ours, get); r != (res{"secret\n", "", 0}) {
		t.Errorf("ours as root: %+v", r)
	}
	if r := run(p.Env, p.Bin("vmtoolsd"), "--cmd", get); r.out != "secret\n" || r.code != 0 {
		t.Errorf("Debian's vmtoolsd --cmd as root: %+v", r)
	}
	oursNobody := run(nil, setpriv, append(nobody, ours, get)...)
	debNobody := run(p.Env, setpriv, append(nobody, p.Bin("vmware-rpctool"), get)...)
	if debNobody.code == 0 || debNobody.err != "Permission denied\n" {
		t.Errorf("Debian's vmware-rpctool as 65534: %+v", debNobody)
	}
	if oursNobody != debNobody {
		t.Errorf("as 65534 ours %+v, Debian's %+v", oursNobody, debNobody)
	}
	if r := run(p.Env, setpriv, append(nobody, p.Bin("vmtoolsd"), "--cmd", get)...); r.code == 0 {
		t.Errorf("Debian's vmtoolsd --cmd as 65534 succeeded: %+v", r)
	}
	if r := run(p.Env, p.Bin("vmware-rpctool"), get); r != debNobody {
		t.Errorf("Debian's vmware-rpctool (backdoor) as root: %+v, want %+v", r, debNobody)
	}
	v := transports(tr.State(t))["vsock"]
	if v["privileged"] < 2 || v["unprivileged"] < 2 || v["denied"] < 2 {
		t.Errorf("vsock counters %v: want 2 privileged, 2 unprivileged and 2 denied callers", v)
	}
}

// TestVSockTrapPeerTools: Debian's backdoor-only tools work unchanged
// under the vsock trap, and Debian's vmware-toolbox-cmd (RPCI over vsock
// with the privileged walk) reaches the VMX over vsock.
func TestVSockTrapPeerTools(t *testing.T) {
	p := testutil.Peer(t)
	tr := testutil.StartTrap(t, "--guestinfo", "meta=abc")
	if _, e, c := tr.RunEnv(t, p.Env, p.Bin("vmware-checkvm")); c != 0 {
		t.Errorf("vmware-checkvm: %d %s", c, e)
	}
	if o, e, c := tr.RunEnv(t, p.Env, p.Bin("vmware-rpctool"), "info-get guestinfo.meta"); o != "abc\n" || c != 0 {
		t.Errorf("vmware-rpctool: %q %q %d", o, e, c)
	}
	before := transports(tr.State(t))["vsock"]["rpci"]
	// disk list asks the VMX whether shrinking is supported (vmxsim
	// does not know the command: the tool then says it is not).
	tr.RunEnv(t, p.Env, p.Bin("vmware-toolbox-cmd"), "disk", "list")
	if after := transports(tr.State(t))["vsock"]["rpci"]; after <= before {
		t.Errorf("vmware-toolbox-cmd sent no RPCI over vsock (%v -> %v)", before, after)
	}
}

// TestVSockTrapProbe drives the trap's emulation call by call (bdprobe
// vsock): the socket says AF_VSOCK, bind follows vsock's rules (EINVAL
// when bound, EADDRINUSE while another socket holds the port and not after
// it closed, EADDRNOTAVAIL for another CID and for datagram sockets),
// names are sockaddr_vm values, a port without a VMX listener resets,
// socketpair is refused, and /dev/vsock's GET_LOCAL_CID answers the guest
// CID. As uid 65534 the privileged bind fails with EACCES.
func TestVSockTrapProbe(t *testing.T) {
	tr := testutil.StartTrap(t)
	probe := filepath.Join(tr.Bin, "bdprobe")
	out, errOut, code := tr.Run(t, probe, "vsock")
	want := "domain=40/ok bind1023=ok rebind=EINVAL name=0xffffffff:1023 peer=ENOTCONN inuse=EADDRINUSE badcid=EADDRNOTAVAIL noport=ECONNRESET connect=ok peer=0:976 again=EISCONN bufsize=262144/ok dgrambind=EADDRNOTAVAIL socketpair=EAFNOSUPPORT reuse=ok"
	if _, err := os.Stat("/dev/vsock"); err == nil {
		want += " localcid=3/ok"
	}
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("bdprobe vsock: %d\n got %q\nwant %q\n%s", code, out, want, errOut)
	}
	setpriv, err := exec.LookPath("setpriv")
	testutil.Require(t, err == nil, "setpriv (util-linux)", "apt-get install util-linux")
	out, errOut, code = tr.Run(t, setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all", probe, "vsock")
	if code != 0 || !strings.Contains(out, " bind1023=EACCES ") {
		t.Fatalf("bdprobe vsock as 65534: %d %q %q", code, out, errOut)
	}
	// Outside the trap the probe refuses to create the socket at all.
	if _, _, code := testutil.RunBinary(t, probe, "vsock"); code != 4 {
		t.Fatalf("vsock probe outside the trap: exit %d, want 4", code)
	}
}

// TestVSphereExtraConfigGuestinfo: as on vSphere, the guestinfo.* keys of
// the VM's extraConfig are what the guest reads: the VM starts with
// --guestinfo's in its extraConfig, and `govc vm.change -e
// guestinfo.meta=abc` (how admins hand cloud-init its metadata) is what
// Debian's vmware-rpctool and ours read next; an empty value removes it.
func TestVSphereExtraConfigGuestinfo(t *testing.T) {
	p := testutil.Peer(t)
	tr := testutil.StartTrap(t, "--vsphere", "127.0.0.1:0", "--guestinfo", "seed=s1")
	ctl := vmxsim.NewCtl(tr.Dir)
	if out := govc(t, ctl, "vm.info", "-e", "govmtools-vm"); !strings.Contains(out, "guestinfo.seed:") || !strings.Contains(out, "s1") {
		t.Errorf("extraConfig lacks --guestinfo's guestinfo.seed:\n%s", out)
	}
	govc(t, ctl, "vm.change", "-vm", "govmtools-vm", "-e", "guestinfo.meta=abc")
	get := "info-get guestinfo.meta"
	if o, e, c := tr.RunEnv(t, p.Env, p.Bin("vmware-rpctool"), get); o != "abc\n" || c != 0 {
		t.Errorf("Debian's vmware-rpctool: %q %q %d", o, e, c)
	}
	if o, e, c := tr.Run(t, filepath.Join(tr.Bin, "vmware-rpctool"), get); o != "abc\n" || c != 0 {
		t.Errorf("our vmware-rpctool: %q %q %d", o, e, c)
	}
	govc(t, ctl, "vm.change", "-vm", "govmtools-vm", "-e", "guestinfo.meta=")
	if o, e, c := tr.RunEnv(t, p.Env, p.Bin("vmware-rpctool"), get); c != 1 || e != "No value found\n" {
		t.Errorf("after removing the key: %q %q %d", o, e, c)
	}
}

// TestPeerGoldenBothTransports: Debian's vmtoolsd's startup exchange is
// the same over vsock (the DataMap framing of its real AF_VSOCK code,
// decoded by vmxsim) as over the backdoor, and both agree with the golden
// vectors in testdata/peer; the trace names the transport of every RPCI.
func TestPeerGoldenBothTransports(t *testing.T) {
	want := render(startupVectors(testutil.GoldenPeerTrace(t, GoldenStartup)))
	var d vmtoolsdCmd
	for _, c := range vsockDaemons(t) {
		if c.name == "debian" {
			d = c
		}
	}
	for _, via := range []string{"vsock", "backdoor"} {
		t.Run(via, func(t *testing.T) {
			trace := filepath.Join(t.TempDir(), "trace.jsonl")
			args := []string{"--ping-interval", "200ms", "--trace", trace}
			if via == "backdoor" {
				args = append(args, "--no-vsock")
			}
			tr := testutil.StartTrap(t, args...)
			runDaemon(t, tr, d, "with its capabilities", func(st map[string]any) bool {
				caps, _ := st["capabilities"].([]any)
				guest, _ := st["guest"].(map[string]any)
				return len(caps) > 0 && guest["hostName"] != nil
			})
			msgs := testutil.ReadTrace(t, trace)
			for _, m := range msgs {
				if m.Ch == "rpci" && m.Via != via {
					t.Fatalf("RPCI %q crossed %q, want %q", m.Msg, m.Via, via)
				}
			}
			if got := render(startupVectors(msgs)); got != want {
				t.Errorf("startup over %s differs from the golden vectors:\n got:\n%s\nwant:\n%s", via, got, want)
			}
		})
	}
}

// trapCounters returns ctl state's trap stops and its seccomp stops of
// every system call, summed.
func trapCounters(t *testing.T, st map[string]any) (stops, seccomp float64) {
	t.Helper()
	tr, ok := st["trap"].(map[string]any)
	if !ok {
		t.Fatalf("ctl state under vmxsim run has no trap counters: %v", st["trap"])
	}
	stops, _ = tr["stops"].(float64)
	sc, _ := tr["seccomp"].(map[string]any)
	for _, v := range sc {
		n, _ := v.(float64)
		seccomp += n
	}
	return stops, seccomp
}

// TestVSockTrapHGFS: our vmhgfs-fuse under the trap, as on a VM with
// vsock, sends every HGFS request over vsock; its channels are kept
// (no connection per request), and a request costs the trap no stop:
// the filter stops only the calls that set a socket up, and the data
// path (write, read, poll) runs natively. Stops from signals (Go's
// preemption) are allowed, far fewer than one per request.
func TestVSockTrapHGFS(t *testing.T) {
	testutil.RequireFUSE(t)
	share := t.TempDir()
	e := trapEnv(t, share, nil, "govmtools-vsock", nil, filepath.Join(testutil.Binaries(t), "vmhgfs-fuse"))
	mnt := e.mount(t, ".host:/s")
	dir := filepath.Join(mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	before := e.trap.State(t)
	const files = 300
	if err := hgfswork.CreateFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	if err := hgfswork.StatFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	after := e.trap.State(t)
	trips := hgfsTrips(after) - hgfsTrips(before)
	tb, ta := transports(before), transports(after)
	vsockRPCI := ta["vsock"]["rpci"] - tb["vsock"]["rpci"]
	conns := ta["vsock"]["connections"] - tb["vsock"]["connections"]
	if trips < 2*files {
		t.Fatalf("%v HGFS round trips for %d creations", trips, files)
	}
	if bd := ta["backdoor"]["rpci"] - tb["backdoor"]["rpci"]; bd != 0 || vsockRPCI < trips {
		t.Errorf("%v round trips: %v RPCIs over vsock, %v over the backdoor", trips, vsockRPCI, bd)
	}
	// The pool opens its channels lazily: at most hgfs.DefaultChannels.
	if conns > 4 {
		t.Errorf("%v vsock connections for %v round trips: channels are not kept", conns, trips)
	}
	sb, cb := trapCounters(t, before)
	sa, ca := trapCounters(t, after)
	if seccomp := ca - cb; seccomp > 8*conns {
		t.Errorf("%v seccomp stops for %v connections and %v round trips: the data path stops in the tracer", seccomp, conns, trips)
	}
	if stops := sa - sb; stops > trips/4 {
		t.Errorf("%v trap stops for %v round trips", stops, trips)
	}
	t.Logf("%v round trips, %v vsock connections, %v trap stops, %v seccomp stops", trips, conns, sa-sb, ca-cb)
}

// hgfsTrips is ctl state's hgfs.roundTrips.
func hgfsTrips(st map[string]any) float64 {
	h, _ := st["hgfs"].(map[string]any)
	n, _ := h["roundTrips"].(float64)
	return n
}
