package vmtoolsd

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/internal/version"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

type fixedIP string

func (f fixedIP) PrimaryIP(context.Context) (netip.Addr, error) {
	if f == "" {
		return netip.Addr{}, ErrNoAddress
	}
	return netip.MustParseAddr(string(f)), nil
}

type panicker struct{}

var (
	_ Plugin = panicker{}
	_ Plugin = (*optionRecorder)(nil)
	_ Plugin = features(nil)
)

func (panicker) Plug(r *Registry) {
	r.Mux().HandleFunc("Boom", func(context.Context, []byte) ([]byte, error) { panic("kaboom") })
}

type optionRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (o *optionRecorder) Plug(r *Registry) {
	r.OnOption(o.SetOption)
	r.Capabilities(o.Capabilities)
}

func (o *optionRecorder) SetOption(ctx context.Context, name, value string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, name+"="+value)
	return name == "mine"
}

func (o *optionRecorder) Capabilities() [][]byte {
	return [][]byte{[]byte("tools.capability.statechange "), []byte("tools.capability.softpowerop_retry ")}
}

type world struct {
	svc     *Service
	host    *rpctest.EventHost
	rpci    *rpctest.RPCIHost
	ready   atomic.Int32
	status  chan string
	cancel  context.CancelFunc
	done    chan error
	opts    *optionRecorder
	refuseT atomic.Bool // refuse tools.set.versiontype
}

func start(t *testing.T) *world {
	t.Helper()
	w := &world{status: make(chan string, 100), done: make(chan error, 1), opts: &optionRecorder{}}
	w.rpci = &rpctest.RPCIHost{Reply: func(req []byte) []byte {
		if w.refuseT.Load() && strings.HasPrefix(string(req), "tools.set.versiontype ") {
			return []byte("0 Unknown command")
		}
		return []byte("1 ")
	}}
	guest, host := rpctest.NewEventPipe()
	w.host = host
	dialed := false
	var mu sync.Mutex
	w.svc = New(Config{
		DialTCLO: func(ctx context.Context) (rpc.Channel, error) {
			mu.Lock()
			defer mu.Unlock()
			if dialed {
				return nil, errors.New("only one channel in this test")
			}
			dialed = true
			return guest, nil
		},
		RPCI:      &rpc.Client{Dial: w.rpci.Dial},
		Plugins:   []Plugin{w.opts, panicker{}},
		PrimaryIP: fixedIP("192.0.2.7"),
		Uptime:    func() (int64, error) { return 201354, nil },
		OnReady:   func() { w.ready.Add(1) },
		OnStatus:  func(s string) { w.status <- s },
	})
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- w.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		host.Close()
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return w
}

func (w *world) cmd(t *testing.T, c string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := w.host.Command(ctx, c)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	return r
}

func (w *world) since(n int) []string { return w.rpci.Requests()[n:] }

func TestResetAndStartup(t *testing.T) {
	w := start(t)
	if got := w.cmd(t, "reset"); got != "OK ATR toolbox" {
		t.Fatalf("reset: %q", got)
	}
	testutil.WaitFor(t, 10*time.Second, "ready", func() bool { return w.ready.Load() == 1 })
	reqs := w.rpci.Requests()
	for _, want := range []string{
		"info-set guestinfo.vmtools.description govmtools " + version.String() + " (open-vm-tools 12.2.0 compatible)\x00",
		"info-set guestinfo.vmtools.versionString 12.2.0\x00",
		"info-set guestinfo.vmtools.versionNumber 12352\x00",
		"info-set guestinfo.vmtools.buildNumber 0\x00",
		"vmx.capability.unified_loop toolbox\x00",
		"log toolbox: Version: govmtools " + version.String() + " (open-vm-tools 12.2.0 compatible)\x00",
	} {
		if !slices.Contains(reqs, want) {
			t.Errorf("missing %q in %q", want, reqs)
		}
	}
	// A reset storm: every reset answered, readiness once, the version
	// line once per process, unified_loop after the storm.
	for range 20 {
		if got := w.cmd(t, "reset"); got != "OK ATR toolbox" {
			t.Fatalf("storm reset: %q", got)
		}
	}
	if got := w.cmd(t, "ping"); got != "OK " {
		t.Fatal(got)
	}
	testutil.WaitFor(t, 10*time.Second, "post-reset after storm", func() bool {
		n := 0
		for _, r := range w.rpci.Requests() {
			if strings.HasPrefix(r, "vmx.capability.unified_loop") {
				n++
			}
		}
		return n >= 2
	})
	n := 0
	for _, r := range w.rpci.Requests() {
		if strings.HasPrefix(r, "log toolbox: Version") {
			n++
		}
	}
	if n != 1 || w.ready.Load() != 1 {
		t.Fatalf("version lines %d, ready %d", n, w.ready.Load())
	}
	infos := 0
	for _, r := range w.rpci.Requests() {
		if strings.HasPrefix(r, "info-set guestinfo.vmtools.description ") {
			infos++
		}
	}
	if infos != 1 {
		t.Fatalf("guestinfo.vmtools.description sent %d times, want once", infos)
	}
}

func TestSetOption(t *testing.T) {
	w := start(t)
	w.cmd(t, "reset")
	testutil.WaitFor(t, 10*time.Second, "ready", func() bool { return w.ready.Load() == 1 })
	n := len(w.rpci.Requests())
	tests := []struct{ cmd, want string }{
		{"Set_Option broadcastIP 1", "OK "},
		{"Set_Option broadcastIP 0", "OK "},
		{"Set_Option broadcastIP", "ERROR Unknown or invalid option"},
		{"Set_Option broadcastIP ", "ERROR Unknown or invalid option"},
		{"Set_Option", "ERROR Unknown or invalid option"},
		{"Set_Option   ", "ERROR Unknown or invalid option"},
		{"Set_Option enableDnD 1", "OK "},
		{"Set_Option mine two words\x00", "OK "},
		{"Set_Option odd  spaced", "OK "},
	}
	for _, tt := range tests {
		if got := w.cmd(t, tt.cmd); got != tt.want {
			t.Errorf("%q -> %q, want %q", tt.cmd, got, tt.want)
		}
	}
	if got := w.since(n); !slices.Equal(got, []string{"info-set guestinfo.ip 192.0.2.7\x00"}) {
		t.Errorf("broadcastIP sent %q", got)
	}
	w.opts.mu.Lock()
	seen := w.opts.seen
	w.opts.mu.Unlock()
	want := []string{"broadcastIP=1", "broadcastIP=0", "enableDnD=1", "mine=two words", "odd= spaced"}
	if !slices.Equal(seen, want) {
		t.Errorf("plugins saw %q, want %q", seen, want)
	}
}

func TestCapabilitiesRegister(t *testing.T) {
	w := start(t)
	w.cmd(t, "reset")
	testutil.WaitFor(t, 10*time.Second, "ready", func() bool { return w.ready.Load() == 1 })
	n := len(w.rpci.Requests())
	if got := w.cmd(t, "Capabilities_Register"); got != "OK " {
		t.Fatal(got)
	}
	// Debian's vmtoolsd 12.2.0 order and bytes (testdata/peer).
	want := []string{
		"tools.capability.hgfs_server toolbox 1\x00",
		"SetGuestInfo  7 201354\x00",
		"tools.capability.statechange ",
		"tools.capability.softpowerop_retry ",
		"tools.capability.features 36=0\x00",
		"tools.capability.guest_conf_directory /etc/vmware-tools\x00",
		"tools.set.versiontype 12352 4\x00",
	}
	if got := w.since(n); !slices.Equal(got, want) {
		t.Fatalf("sent %q\nwant %q", got, want)
	}
	// An old host refuses versiontype: tools.set.version, unmanaged.
	w.refuseT.Store(true)
	n = len(w.rpci.Requests())
	w.cmd(t, "Capabilities_Register")
	got := w.since(n)
	if got[len(got)-1] != "tools.set.version 2147483647\x00" {
		t.Fatalf("fallback: %q", got)
	}
	// Orderly stop withdraws the old-style capability and the features.
	w.cancel()
	<-w.done
	w.done <- nil // for the cleanup
	reqs := w.rpci.Requests()
	if last := reqs[len(reqs)-2:]; !slices.Equal(last, []string{"tools.capability.hgfs_server toolbox 0\x00", "tools.capability.features 36=0\x00"}) {
		t.Fatalf("last requests %q", last)
	}
}

type features []Feature

func (f features) Plug(r *Registry) { r.Features(func() []Feature { return f }) }

// TestFeatures: plugins' new-style capabilities merge into one message in
// index order, a plugin may set CAP_VMBACKUP_NVME, and withdrawing sends
// every value 0.
func TestFeatures(t *testing.T) {
	s := New(Config{Plugins: []Plugin{features{{37, 1}}, features{{CapVMBackupNVMe, 1}, {5, 2}}}})
	if got := string(s.featuresMessage(true)); got != "tools.capability.features 5=2 36=1 37=1\x00" {
		t.Fatalf("set: %q", got)
	}
	if got := string(s.featuresMessage(false)); got != "tools.capability.features 5=0 36=0 37=0\x00" {
		t.Fatalf("unset: %q", got)
	}
	// A failing uptime source sends no SetGuestInfo.
	s = New(Config{Uptime: func() (int64, error) { return 0, errors.New("no /proc") }})
	for _, c := range s.capabilities(true) {
		if strings.HasPrefix(string(c), "SetGuestInfo") {
			t.Fatalf("sent %q without an uptime", c)
		}
	}
}

func TestUnknownAndPanic(t *testing.T) {
	w := start(t)
	w.cmd(t, "reset")
	if got := w.cmd(t, "No_Such_Thing arg"); got != "ERROR Unknown Command" {
		t.Fatal(got)
	}
	if got := w.cmd(t, "Boom"); !strings.HasPrefix(got, "ERROR ") {
		t.Fatalf("panic reply %q", got)
	}
	if got := w.cmd(t, "ping"); got != "OK " {
		t.Fatalf("after panic: %q", got)
	}
}

func TestVersion(t *testing.T) {
	if DefaultVersion().Uint() != 12352 || (Version{13, 1, 0, 0}).Uint() != 13344 || (Version{12, 5, 0, 0}).Uint() != 12448 {
		t.Fatal("TOOLS_VERSION_UINT")
	}
}
