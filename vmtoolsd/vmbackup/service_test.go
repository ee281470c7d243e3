package vmbackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

// fakeFreezer records freezes and thaws; errs scripts a failure per path.
type fakeFreezer struct {
	mu     sync.Mutex
	frozen map[string]bool
	log    []string
	errs   map[string]error
	fsid   map[string][2]int64
	block  chan struct{} // when set, Freeze waits for it
}

func newFakeFreezer() *fakeFreezer {
	return &fakeFreezer{frozen: map[string]bool{}, errs: map[string]error{}, fsid: map[string][2]int64{}}
}

func (f *fakeFreezer) Freeze(p string) (Frozen, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[p]; err != nil {
		return Frozen{}, &FreezeError{Path: p, Op: "freeze", Fsid: f.fsid[p], Err: err}
	}
	if f.frozen[p] {
		return Frozen{}, &FreezeError{Path: p, Op: "freeze", Fsid: f.fsid[p], Err: syscall.EBUSY}
	}
	f.frozen[p] = true
	f.log = append(f.log, "freeze "+p)
	return Frozen{Path: p, Fsid: f.fsid[p], FD: -1}, nil
}

func (f *fakeFreezer) Thaw(fr Frozen) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.frozen[fr.Path] {
		return syscall.EINVAL
	}
	delete(f.frozen, fr.Path)
	f.log = append(f.log, "thaw "+fr.Path)
	return nil
}

func (f *fakeFreezer) Close(Frozen) {}

func (f *fakeFreezer) Frozen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for p := range f.frozen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (f *fakeFreezer) Log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

var testMounts = []Mount{
	{Dev: "8:1", Path: "/", FSType: "ext4", Source: "/dev/sda1"},
	{Dev: "0:22", Path: "/proc", FSType: "proc", Source: "proc"},
	{Dev: "0:25", Path: "/run", FSType: "tmpfs", Source: "tmpfs"},
	{Dev: "8:2", Path: "/home", FSType: "xfs", Source: "/dev/sda2"},
	{Dev: "0:40", Path: "/mnt/nfs", FSType: "nfs4", Source: "srv:/x"},
	{Dev: "8:3", Path: "/data", FSType: "ext4", Source: "/dev/sda3"},
	{Dev: "8:2", Path: "/srv/bind", FSType: "xfs", Source: "/dev/sda2"},
}

// gateSender is the fake VMX's RPCI side, which can go away.
type gateSender struct {
	c    *rpc.Client
	gone atomic.Bool
}

func (g *gateSender) Call(ctx context.Context, req []byte) ([]byte, error) {
	if g.gone.Load() {
		return nil, errors.New("host gone")
	}
	return g.c.Call(ctx, req)
}

type harness struct {
	svc  *Service
	host *rpctest.RPCIHost
	rpci *gateSender
	mux  *rpc.Mux
	fr   *fakeFreezer
	set  Settings
	mu   sync.Mutex
	dir  string
}

func newHarness(t *testing.T, mod func(*Settings)) *harness {
	t.Helper()
	h := &harness{host: &rpctest.RPCIHost{Reply: func([]byte) []byte { return []byte("1 ") }}, mux: &rpc.Mux{}, fr: newFakeFreezer(), dir: t.TempDir()}
	h.rpci = &gateSender{c: &rpc.Client{Dial: h.host.Dial}}
	h.set = DefaultSettings()
	h.set.ManifestDir = h.dir
	if mod != nil {
		mod(&h.set)
	}
	h.svc = &Service{
		RPCI:     h.rpci,
		Settings: func() Settings { h.mu.Lock(); defer h.mu.Unlock(); return h.set },
		Freezer:  h.fr,
		Mounts:   func() ([]Mount, error) { return slices.Clone(testMounts), nil },
		Sync:     func() {},
		Scripts:  &Scripts{Dir: filepath.Join(h.dir, "backupScripts.d"), PreFreeze: "-", PostThaw: "-", Owner: uint32(os.Getuid())},
	}
	h.svc.Register(h.mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (h *harness) cmd(s string) string {
	return string(h.mux.Dispatch(context.Background(), []byte(s)))
}

// events are the eventSet requests without prefix and NUL.
func (h *harness) events() []string {
	var out []string
	for _, r := range h.host.Requests() {
		if e, ok := strings.CutPrefix(r, "vmbackup.eventSet "); ok {
			out = append(out, strings.TrimSuffix(e, "\x00"))
		}
	}
	return out
}

// eventsNoKeepAlive drops the keep-alives, whose count depends on timing.
func (h *harness) eventsNoKeepAlive() []string {
	return slices.DeleteFunc(h.events(), func(e string) bool { return strings.HasPrefix(e, EvKeepAlive) })
}

func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestHappyPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		if r := h.cmd("vmbackup.start 1"); r != "OK " {
			t.Fatalf("start: %q", r)
		}
		synctest.Wait()
		if h.svc.State() != SyncFreeze {
			t.Fatalf("state %v", h.svc.State())
		}
		want(t, "frozen", h.fr.Frozen(), []string{"/", "/data", "/home"})
		if r := h.cmd("vmbackup.snapshotDone"); r != "OK " {
			t.Fatalf("snapshotDone: %q", r)
		}
		// The thaw happens inside the handler, before the reply.
		want(t, "frozen after snapshotDone", h.fr.Frozen(), nil)
		synctest.Wait()
		want(t, "freezer", h.fr.Log(), []string{"freeze /data", "freeze /home", "freeze /", "thaw /", "thaw /home", "thaw /data"})
		manifest := filepath.Join(h.dir, ManifestName)
		want(t, "events", h.events(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.genericManifest 0 " + manifest, "req.done 0 "})
		b, err := os.ReadFile(manifest)
		if err != nil || !strings.Contains(string(b), "<providerName>fifreeze</providerName>") {
			t.Errorf("manifest %q, %v", b, err)
		}
		if h.svc.State() != Idle {
			t.Errorf("state %v", h.svc.State())
		}
		// A second operation is accepted.
		if r := h.cmd("vmbackup.start 0"); r != "OK " {
			t.Fatalf("second start: %q", r)
		}
	})
}

func TestKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.cmd("vmbackup.start 0")
		synctest.Wait()
		time.Sleep(6 * time.Second) // commit at 0, keep-alives at 2.5 s and 5 s
		synctest.Wait()
		want(t, "events", h.events(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.keepAlive 0 ", "req.keepAlive 0 "})
		h.cmd("vmbackup.snapshotDone")
		synctest.Wait()
		n := len(h.events())
		time.Sleep(10 * time.Second)
		if len(h.events()) != n {
			t.Errorf("keep-alives after req.done: %q", h.events()[n:])
		}
	})
}

func TestOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		for cmd, r := range map[string]string{
			"vmbackup.abort":             "ERROR Error: no quiesce operation in progress",
			"vmbackup.snapshotDone":      "ERROR Error: no quiesce operation in progress",
			"vmbackup.snapshotDone x":    "ERROR Error: no quiesce operation in progress",
			"vmbackup.snapshotCompleted": "ERROR Error: no quiesce complete in progress",
			"vmbackup.start x":           "ERROR Error initializing quiesce operation.",
			"vmbackup.start 1\n":         "ERROR Error initializing quiesce operation.",
			"vmbackup.start 0x":          "ERROR Error initializing quiesce operation.",
		} {
			if got := h.cmd(cmd); got != r {
				t.Errorf("%q -> %q, want %q", cmd, got, r)
			}
		}
		synctest.Wait()
		if len(h.fr.Log()) != 0 || len(h.events()) != 0 {
			t.Fatalf("out-of-order commands froze %q / sent %q", h.fr.Log(), h.events())
		}
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		if got := h.cmd("vmbackup.start 1"); got != "ERROR Quiesce operation already in progress." {
			t.Errorf("second start: %q", got)
		}
		if got := h.cmd("vmbackup.snapshotCompleted"); got != "ERROR Error: no quiesce complete in progress" {
			t.Errorf("snapshotCompleted: %q", got)
		}
		h.cmd("vmbackup.snapshotDone")
		synctest.Wait()
		if got := h.cmd("vmbackup.snapshotDone"); got != "ERROR Error: no quiesce operation in progress" {
			t.Errorf("snapshotDone after done: %q", got)
		}
	})
}

func TestAbortWhileFrozen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		if r := h.cmd("vmbackup.abort"); r != "OK " {
			t.Fatalf("abort: %q", r)
		}
		want(t, "frozen", h.fr.Frozen(), nil)
		synctest.Wait()
		want(t, "events", h.events(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.aborted 4 Quiesce canceled.", "req.done 0 "})
		if r := h.cmd("vmbackup.snapshotDone"); r != "ERROR Error: no quiesce operation in progress" {
			t.Errorf("snapshotDone after abort: %q", r)
		}
	})
}

// TestSnapshotDoneNeverSent: the abort timer (tools.conf timeout, default
// 900 s) thaws.
func TestSnapshotDoneNeverSent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{{"default", DefaultTimeout}, {"30s", 30 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, func(s *Settings) { s.Timeout = tc.timeout })
				h.cmd("vmbackup.start 1")
				synctest.Wait()
				time.Sleep(tc.timeout - time.Second)
				synctest.Wait()
				want(t, "frozen before the timeout", h.fr.Frozen(), []string{"/", "/data", "/home"})
				time.Sleep(time.Second)
				synctest.Wait()
				want(t, "frozen after the timeout", h.fr.Frozen(), nil)
				want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.aborted 4 Quiesce canceled.", "req.done 0 "})
			})
		})
	}
}

// TestTimeoutZero: timeout=0 disables the abort timer as in vmtoolsd, but
// the thaw deadline still thaws at 900 s; a late snapshotDone then
// reports the thaw as failed, so the host does not keep the snapshot as
// quiesced.
func TestTimeoutZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(s *Settings) { s.Timeout = 0 })
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		time.Sleep(DefaultTimeout + time.Second)
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), nil)
		if r := h.cmd("vmbackup.snapshotDone"); r != "OK " {
			t.Fatalf("snapshotDone: %q", r)
		}
		synctest.Wait()
		want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.error 3 Error when notifying the sync provider.", "req.done 0 "})
	})
}

// TestHostGone: when event sends fail (the VMX went away) the guest
// aborts and thaws by the next keep-alive.
func TestHostGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		h.rpci.gone.Store(true)
		time.Sleep(KeepAlivePeriod)
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), nil)
		if h.svc.State() != Idle {
			t.Errorf("state %v", h.svc.State())
		}
	})
}

// TestHostHangs: a host that accepts the channel but never answers: each
// send gives up after SendTimeout and the guest thaws.
func TestHostHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		block := make(chan struct{})
		defer close(block)
		h.svc.RPCI = senderFunc(func(ctx context.Context, req []byte) ([]byte, error) {
			if strings.Contains(string(req), EvKeepAlive) {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return h.rpci.Call(ctx, req)
		})
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		time.Sleep(KeepAlivePeriod + SendTimeout)
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), nil)
	})
}

type senderFunc func(ctx context.Context, req []byte) ([]byte, error)

func (f senderFunc) Call(ctx context.Context, req []byte) ([]byte, error) { return f(ctx, req) }

func TestCommitNotDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.svc.RPCI = senderFunc(func(ctx context.Context, req []byte) ([]byte, error) {
			if strings.Contains(string(req), EvSnapshotCommit) {
				return nil, errors.New("refused")
			}
			return h.rpci.Call(ctx, req)
		})
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), nil)
		want(t, "freezer", h.fr.Log(), []string{"freeze /data", "freeze /home", "freeze /", "thaw /", "thaw /home", "thaw /data"})
		want(t, "events", h.events(), []string{"reset 0 ", "req.done 0 "})
	})
}

func TestEBUSY(t *testing.T) {
	t.Run("fail", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, nil)
			h.fr.errs["/home"] = syscall.EBUSY
			h.cmd("vmbackup.start 1")
			synctest.Wait()
			want(t, "freezer", h.fr.Log(), []string{"freeze /data", "thaw /data"})
			want(t, "events", h.events(), []string{"reset 0 ", "req.error 3 Error when enabling the sync provider.", "req.done 0 "})
		})
	})
	t.Run("ignoreFrozenFileSystems", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, func(s *Settings) { s.IgnoreFrozenFileSystems = true })
			h.fr.errs["/home"] = syscall.EBUSY
			h.cmd("vmbackup.start 1")
			synctest.Wait()
			want(t, "frozen", h.fr.Frozen(), []string{"/", "/data"})
			h.cmd("vmbackup.snapshotDone")
			synctest.Wait()
			want(t, "events", h.events()[:2], []string{"reset 0 ", "prov.snapshotCommit 0 "})
			want(t, "frozen", h.fr.Frozen(), nil)
		})
	})
	t.Run("same superblock", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, nil)
			// /data and / share a superblock reached by two devices'
			// names: the second freeze answers EBUSY with a known fsid.
			h.fr.fsid["/data"], h.fr.fsid["/"] = [2]int64{7, 7}, [2]int64{7, 7}
			h.fr.errs["/"] = syscall.EBUSY
			h.cmd("vmbackup.start 1")
			synctest.Wait()
			want(t, "frozen", h.fr.Frozen(), []string{"/data", "/home"})
		})
	})
}

func TestFreezeErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		op     string
		frozen []string
	}{
		{syscall.EOPNOTSUPP, "freeze", []string{"/", "/data"}},
		{syscall.ENOENT, "open", []string{"/", "/data"}},
		{syscall.EPERM, "freeze", nil},
		{syscall.EIO, "freeze", nil},
	} {
		t.Run(tc.err.(syscall.Errno).Error(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, nil)
				h.svc.Freezer = freezerFunc{h.fr, func(p string) error {
					if p == "/home" {
						return &FreezeError{Path: p, Op: tc.op, Err: tc.err}
					}
					return nil
				}}
				h.cmd("vmbackup.start 1")
				synctest.Wait()
				want(t, "frozen", h.fr.Frozen(), tc.frozen)
				if tc.frozen == nil {
					want(t, "events", h.events(), []string{"reset 0 ", "req.error 3 Error when enabling the sync provider.", "req.done 0 "})
				}
			})
		})
	}
}

type freezerFunc struct {
	*fakeFreezer
	pre func(string) error
}

func (f freezerFunc) Freeze(p string) (Frozen, error) {
	if err := f.pre(p); err != nil {
		return Frozen{}, err
	}
	return f.fakeFreezer.Freeze(p)
}

// TestNullDrivers: FIFREEZE unavailable (ENOTTY first) → sync(2); the
// sync driver disabled → the null provider. Neither writes a manifest.
func TestNullDrivers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Settings)
		notty bool
	}{{"enotty", nil, true}, {"enableSyncDriver=false", func(s *Settings) { s.EnableSyncDriver = false }, false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, tc.mod)
				if tc.notty {
					h.fr.errs["/data"] = syscall.ENOTTY
				}
				var syncs atomic.Int32
				h.svc.Sync = func() { syncs.Add(1) }
				h.cmd("vmbackup.start 1")
				synctest.Wait()
				h.cmd("vmbackup.snapshotDone")
				synctest.Wait()
				if syncs.Load() != 1 || len(h.fr.Log()) != 0 {
					t.Errorf("syncs %d, freezer %q", syncs.Load(), h.fr.Log())
				}
				want(t, "events", h.events(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.done 0 "})
			})
		})
	}
	t.Run("enotty without the null driver", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, func(s *Settings) { s.EnableNullDriver = false })
			h.fr.errs["/data"] = syscall.ENOTTY
			h.cmd("vmbackup.start 1")
			synctest.Wait()
			want(t, "events", h.events(), []string{"reset 0 ", "req.error 3 Error when enabling the sync provider.", "req.done 0 "})
		})
	})
}

func TestExcludedAndNoFileSystems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, func(s *Settings) { s.ExcludedFileSystems = "/data,/h?me" })
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), []string{"/"})
		h.cmd("vmbackup.snapshotDone")
		synctest.Wait()
		h.mu.Lock()
		h.set.ExcludedFileSystems = "*"
		h.mu.Unlock()
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		ev := h.events()
		want(t, "events", ev[len(ev)-3:], []string{"reset 0 ", "req.error 3 Error when enabling the sync provider.", "req.done 0 "})
	})
}

// TestAbortDuringFreeze: the worker is stuck in FIFREEZE when the abort
// comes; what it freezes afterwards is thawed as soon as it returns.
func TestAbortDuringFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, nil)
		h.fr.block = make(chan struct{})
		h.cmd("vmbackup.start 1")
		synctest.Wait()
		if h.svc.State() != SyncFreezeWait {
			t.Fatalf("state %v", h.svc.State())
		}
		if r := h.cmd("vmbackup.snapshotDone"); r != "ERROR Error: unexpected state for quiesce done message." {
			t.Errorf("snapshotDone while freezing: %q", r)
		}
		if r := h.cmd("vmbackup.abort"); r != "OK " {
			t.Fatalf("abort: %q", r)
		}
		synctest.Wait()
		want(t, "events", h.events(), []string{"reset 0 ", "req.aborted 4 Quiesce canceled.", "req.done 0 "})
		close(h.fr.block)
		synctest.Wait()
		want(t, "frozen", h.fr.Frozen(), nil)
	})
}

// TestShutdownWhileFrozen: stopping the daemon thaws (vmtoolsd's H1).
func TestShutdownWhileFrozen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fr := newFakeFreezer()
		svc := &Service{RPCI: senderFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil }), Freezer: fr,
			Mounts: func() ([]Mount, error) { return testMounts, nil }, Sync: func() {}, Scripts: &Scripts{Dir: "/nonexistent", PreFreeze: "-", PostThaw: "-"}}
		mux := &rpc.Mux{}
		svc.Register(mux)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- svc.Run(ctx) }()
		mux.Dispatch(ctx, []byte("vmbackup.start 1"))
		synctest.Wait()
		want(t, "frozen", fr.Frozen(), []string{"/", "/data", "/home"})
		cancel()
		<-done
		want(t, "frozen after shutdown", fr.Frozen(), nil)
		if r := string(mux.Dispatch(context.Background(), []byte("vmbackup.start 1"))); r != "ERROR Error initializing quiesce operation." {
			t.Errorf("start after stop: %q", r)
		}
	})
}

func TestFeatures(t *testing.T) {
	s := &Service{}
	if f := s.Features(); len(f) != 1 || f[0].Index != 36 || f[0].Value != 0 {
		t.Errorf("default features %+v", f)
	}
	s.Settings = func() Settings { st := DefaultSettings(); st.EnableNVMe = true; return st }
	if f := s.Features(); f[0].Value != 1 {
		t.Errorf("enableNVMe features %+v", f)
	}
}

var _ = fmt.Sprint

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// blockingHandler blocks every log write while blocked says so, as a
// journal or log file on a frozen /var would.
type blockingHandler struct {
	blocked func() bool
	mu      *sync.Mutex
	msgs    *[]string
}

func (h blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h blockingHandler) Handle(_ context.Context, r slog.Record) error {
	for h.blocked() {
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h blockingHandler) WithGroup(string) slog.Handler      { return h }

// TestLogsHeldWhileFrozen: with a log sink that blocks while anything is
// frozen, snapshotDone still thaws (open-vm-tools#650), and the records kept
// meanwhile are written after the thaw, in order.
func TestLogsHeldWhileFrozen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var msgs []string
		fr := newFakeFreezer()
		bh := blockingHandler{blocked: func() bool { return len(fr.Frozen()) > 0 }, mu: &mu, msgs: &msgs}
		var io []bool
		svc := &Service{RPCI: senderFunc(func(context.Context, []byte) ([]byte, error) { return nil, nil }), Freezer: fr,
			Mounts: func() ([]Mount, error) { return testMounts, nil }, Sync: func() {}, Scripts: &Scripts{Dir: "/nonexistent", PreFreeze: "-", PostThaw: "-"},
			Logger: slog.New(bh), OnIOFreeze: func(f bool) { io = append(io, f) }}
		mux := &rpc.Mux{}
		svc.Register(mux)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go svc.Run(ctx)
		mux.Dispatch(ctx, []byte("vmbackup.start 1"))
		synctest.Wait()
		want(t, "frozen", fr.Frozen(), []string{"/", "/data", "/home"})
		if r := string(mux.Dispatch(ctx, []byte("vmbackup.snapshotDone"))); r != "OK " {
			t.Fatalf("snapshotDone: %q", r)
		}
		want(t, "frozen after snapshotDone", fr.Frozen(), nil)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		i, j := slices.Index(msgs, "frozen"), slices.Index(msgs, "thawed")
		if i < 0 || j < i {
			t.Errorf("log order %q", msgs)
		}
		if !slices.Equal(io, []bool{true, false}) {
			t.Errorf("io-freeze %v", io)
		}
	})
}
