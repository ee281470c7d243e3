// Package vmbackup owns quiesced snapshots on the guest side: the TCLO
// commands vmbackup.start, vmbackup.abort, vmbackup.snapshotDone and
// vmbackup.snapshotCompleted, the vmbackup.eventSet events sent back
// (open-vm-tools' names and codes, keep-alives every 2.5 s), the backup
// scripts (backupScripts.d and the legacy pre-freeze/post-thaw scripts),
// the Linux sync driver (FIFREEZE/FITHAW on the local mounts, behind the
// Freezer interface) and the null driver, the [vmbackup] tools.conf keys,
// and the guarantee that nothing stays frozen: the abort timer, an
// in-process thaw deadline that shares no lock with the state machine,
// and the thaw guard process (GuardMain) for a daemon that is killed.
//
// The state machine (Transition) is a pure function, driven by one
// goroutine (Service.Run) that owns every timer and carries out the
// actions.
package vmbackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/vmtoolsd"
)

// Sender sends one RPCI request; *rpc.Client is one.
type Sender interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
}

// Timing defaults.
const (
	// KeepAlivePeriod is how long after the last successful event the
	// next req.keepAlive goes (VMBACKUP_KEEP_ALIVE_PERIOD / 2).
	KeepAlivePeriod = 2500 * time.Millisecond
	// SendTimeout bounds each event send: a host that stops answering
	// aborts the operation (and thaws) instead of stalling it.
	SendTimeout = 5 * time.Second
)

// ErrThawedEarly is the thaw result on snapshotDone when the thaw
// deadline had already thawed the file systems: the snapshot may not be
// consistent, so the host is told the thaw failed.
var ErrThawedEarly = errors.New("the file systems were thawed by the thaw deadline before snapshotDone")

// Service is the vmbackup plugin.
type Service struct {
	// RPCI sends the events.
	RPCI Sender
	// Settings reads [vmbackup] at each start; nil means the defaults.
	Settings func() Settings
	// Freezer freezes for the sync driver; nil means LinuxFreezer.
	Freezer Freezer
	// Mounts lists the mounts; nil means /proc/self/mountinfo.
	Mounts func() ([]Mount, error)
	// Sync is sync(2) for the null driver; nil means SystemSync.
	Sync func()
	// Guard starts the thaw guard before the first freeze; nil means
	// none (unit tests; the daemon always sets it).
	Guard StartGuard
	// Scripts runs the backup scripts; nil means the default paths.
	Scripts *Scripts
	// KeepAlive and SendTimeout override the defaults (tests).
	KeepAlive, SendTimeout time.Duration
	// OnFrozen is called with the frozen paths (tests, benchmarks).
	OnFrozen func([]string)
	// Logger receives what happens; nil discards it. Its records are
	// kept in memory from the freeze until the thaw.
	Logger *slog.Logger
	// OnIOFreeze is told true before the freeze starts and false once
	// nothing is frozen (vmtoolsd's io-freeze signal): the daemon's other
	// writers (log sinks, config reloads) pause on it. It must not block.
	OnIOFreeze func(frozen bool)

	initOnce sync.Once
	logHold  *holdHandler
	reqs     chan request
	quit     chan struct{}
	state    atomic.Int32

	op *operation // owned by Run
}

type request struct {
	in    Input
	args  StartArgs
	reply chan error
}

// operation is one quiesce, from start to req.done.
type operation struct {
	args     StartArgs
	set      Settings
	prov     Provider
	slots    []slot
	froze    int // freeze slots that succeeded (freezeFail runs on those)
	start    time.Time
	deadline time.Time // frozen window cap

	async       chan asyncResult // the running phase's result; nil when none
	cancelAsync context.CancelFunc

	runningOp  Op // the script phase in async, "" for the freeze
	thawer     *guardedThaw
	thawFailed bool
	rpcFailed  bool
}

type asyncResult struct {
	scripts *PhaseResult
	thawer  Thawer
	err     error
}

func (s *Service) init() {
	s.initOnce.Do(func() {
		s.reqs = make(chan request)
		s.quit = make(chan struct{})
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.logHold = newHoldHandler(s.Logger.Handler())
		s.Logger = slog.New(s.logHold)
		if s.Scripts == nil {
			s.Scripts = &Scripts{}
		}
		if s.Scripts.Logger == nil {
			s.Scripts.Logger = s.Logger
		}
	})
}

// State is the current state (for tests and status).
func (s *Service) State() State { return State(s.state.Load()) }

// Plug registers the vmbackup commands, CAP_VMBACKUP_NVME and the
// keep-alive loop.
func (s *Service) Plug(r *vmtoolsd.Registry) {
	s.Register(r.Mux())
	r.Features(s.Features)
	r.Go("vmbackup", s.Run)
}

var _ vmtoolsd.Plugin = (*Service)(nil)

// Register adds the vmbackup commands to mux.
func (s *Service) Register(mux *rpc.Mux) {
	s.init()
	mux.HandleFunc(CmdStart, func(ctx context.Context, args []byte) ([]byte, error) {
		a, err := ParseStart(args)
		if err != nil {
			s.Logger.Warn("refusing vmbackup.start", "err", err)
			return nil, ErrInit
		}
		return nil, s.command(ctx, request{in: InStart, args: a})
	})
	for name, in := range map[string]Input{CmdAbort: InAbort, CmdSnapshotDone: InSnapshotDone, CmdSnapshotCompleted: InSnapshotCompleted} {
		mux.HandleFunc(name, func(ctx context.Context, args []byte) ([]byte, error) {
			return nil, s.command(ctx, request{in: in})
		})
	}
}

// Features is CAP_VMBACKUP_NVME: 1 when [vmbackup] enableNVMe is set.
func (s *Service) Features() []vmtoolsd.Feature {
	v := 0
	if s.settings().EnableNVMe {
		v = 1
	}
	return []vmtoolsd.Feature{{Index: vmtoolsd.CapVMBackupNVMe, Value: v}}
}

func (s *Service) settings() Settings {
	if s.Settings == nil {
		return DefaultSettings()
	}
	return s.Settings()
}

func (s *Service) command(ctx context.Context, r request) error {
	s.init()
	r.reply = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-s.quit:
		return ErrInit
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.reply
}

// Run serves the commands and runs the operation until ctx ends. On the
// way out whatever is frozen is thawed (vmtoolsd's H1 drops it).
func (s *Service) Run(ctx context.Context) error {
	s.init()
	defer close(s.quit)
	var abortC, keepC <-chan time.Time
	var abortT, keepT *time.Timer
	stop := func(t **time.Timer, c *<-chan time.Time) {
		if *t != nil {
			(*t).Stop()
			*t, *c = nil, nil
		}
	}
	d := &driver{s: s, ctx: ctx}
	d.armKeep = func() {
		stop(&keepT, &keepC)
		if s.op != nil {
			keepT = time.NewTimer(cmp(s.KeepAlive, KeepAlivePeriod))
			keepC = keepT.C
		}
	}
	d.armAbort = func(dur time.Duration) {
		stop(&abortT, &abortC)
		if dur > 0 {
			abortT = time.NewTimer(dur)
			abortC = abortT.C
		}
	}
	d.stopTimers = func() { stop(&abortT, &abortC); stop(&keepT, &keepC) }
	for {
		var async chan asyncResult
		if s.op != nil {
			async = s.op.async
		}
		select {
		case <-ctx.Done():
			d.shutdown()
			d.stopTimers()
			return nil
		case r := <-s.reqs:
			r.reply <- d.command(r)
		case res := <-async:
			s.op.async, s.op.cancelAsync = nil, nil
			d.result(res)
		case <-abortC:
			abortT, abortC = nil, nil
			s.Logger.Warn("quiesce timed out; aborting")
			d.feed(InTimeout)
		case <-keepC:
			keepT, keepC = nil, nil
			if s.op != nil {
				d.sendEvent(Event{EvKeepAlive, Success, ""}, true)
				d.drain()
			}
		}
	}
}

func cmp(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}

// driver carries out the machine's actions; it runs on Run's goroutine.
type driver struct {
	s          *Service
	ctx        context.Context
	queue      []Input
	armKeep    func()
	armAbort   func(time.Duration)
	stopTimers func()
	ioFrozen   bool // OnIOFreeze was last told true
}

func (d *driver) command(r request) error {
	s := d.s
	if r.in == InStart && s.State() == Idle {
		op, err := d.newOperation(r.args)
		if err != nil {
			s.Logger.Error("cannot start the quiesce operation", "err", err)
			return ErrInit
		}
		s.op = op
		if op.set.Timeout > 0 {
			d.armAbort(op.set.Timeout)
		}
	}
	return d.feed(r.in)
}

func (d *driver) newOperation(a StartArgs) (*operation, error) {
	s := d.s
	set := s.settings()
	if a.Bare {
		// vmtoolsd reads no flag for a bare start: no scripts.
		set.ExecScripts, set.ScriptArg = false, ""
	}
	op := &operation{args: a, set: set, start: time.Now()}
	window := set.Timeout
	if window <= 0 {
		window = DefaultTimeout // timeout=0 disables the abort timer, never the thaw deadline
	}
	op.deadline = op.start.Add(window)
	sync := s.Sync
	if sync == nil {
		sync = SystemSync
	}
	if !set.EnableSyncDriver {
		op.prov = nullProvider{name: "null", sync: sync}
	} else {
		fr := s.Freezer
		if fr == nil {
			fr = LinuxFreezer{}
		}
		mounts := s.Mounts
		if mounts == nil {
			mounts = ReadMounts
		}
		op.prov = &SyncDriver{Freezer: fr, Mounts: mounts, Excluded: set.ExcludedFileSystems, IgnoreBusy: set.IgnoreFrozenFileSystems,
			NullOK: set.EnableNullDriver, Sync: sync, Guard: s.Guard, Logger: s.Logger, OnFrozen: s.OnFrozen}
	}
	if set.ExecScripts {
		op.slots = s.Scripts.List()
	}
	s.Logger.Info("quiesce requested", "generateManifests", a.GenerateManifests, "provider", op.prov.Name(), "scripts", len(op.slots), "timeout", set.Timeout)
	return op, nil
}

// feed runs in through the machine, then every input its actions
// produce; it returns the reply to the first.
func (d *driver) feed(in Input) error {
	d.queue = append(d.queue, in)
	first := true
	var reply error
	for len(d.queue) > 0 {
		in := d.queue[0]
		d.queue = d.queue[1:]
		prev := d.s.State()
		st := Transition(prev, in)
		if first {
			reply, first = st.Reply, false
		}
		if st.Ignored {
			d.s.Logger.Debug("vmbackup input ignored", "state", prev, "input", in)
			continue
		}
		d.s.Logger.Debug("vmbackup transition", "from", prev, "input", in, "to", st.Next)
		d.s.state.Store(int32(st.Next))
		for _, a := range st.Actions {
			d.do(a)
		}
	}
	return reply
}

func (d *driver) drain() {
	if len(d.queue) > 0 {
		in := d.queue[0]
		d.queue = d.queue[1:]
		d.feed(in)
	}
}

func (d *driver) do(a Action) {
	s, op := d.s, d.s.op
	if op == nil {
		return
	}
	switch a.Kind {
	case ActSend:
		d.sendEvent(a.Event, true)
	case ActSendCommit:
		if !d.sendEvent(Event{EvSnapshotCommit, Success, ""}, false) {
			d.queue = append(d.queue, InCommitSendFailed)
		}
	case ActSendAborted:
		msg := MsgCanceled
		if op.thawFailed {
			msg = MsgCannotCancel
		}
		d.sendEvent(Event{EvAborted, RemoteAbort, msg}, true)
	case ActRunScripts:
		slots := op.slots
		if a.Op == OpFreezeFail {
			slots = slots[:op.froze]
		}
		if len(slots) == 0 {
			d.queue = append(d.queue, InScriptsOK)
			return
		}
		ctx, cancel := context.WithCancel(d.ctx)
		ch := make(chan asyncResult, 1)
		op.async, op.cancelAsync = ch, cancel
		arg, per := op.set.ScriptArg, op.set.ScriptTimeout
		go func() {
			defer cancel()
			r := s.Scripts.Run(ctx, a.Op, slots, arg, per)
			if a.Op == OpFreeze {
				r.Stopped = min(r.Stopped, len(slots))
			}
			ch <- asyncResult{scripts: &r}
		}()
		op.runningOp = a.Op
	case ActCancelScript:
		if op.async != nil && op.cancelAsync != nil {
			op.cancelAsync()
			r := <-op.async // the group is SIGKILLed: this is quick
			if op.runningOp == OpFreeze && r.scripts != nil {
				op.froze = r.scripts.Stopped
			}
			op.async, op.cancelAsync = nil, nil
		}
	case ActFreeze:
		d.ioFreeze(true)
		ctx, cancel := context.WithCancel(d.ctx)
		ch := make(chan asyncResult, 1)
		op.async, op.cancelAsync = ch, cancel
		prov, dl := op.prov, Deadline(time.Until(op.deadline).Seconds()+1)
		go func() {
			t, err := prov.Freeze(ctx, dl)
			ch <- asyncResult{thawer: t, err: err}
		}()
		op.runningOp = ""
	case ActCancelFreeze:
		// The worker may sit in FIFREEZE; do not wait for it on this
		// goroutine. What it froze is thawed the moment it returns.
		if op.async != nil {
			op.cancelAsync()
			ch := op.async
			op.async, op.cancelAsync = nil, nil
			go func() {
				if r := <-ch; r.thawer != nil {
					err := r.thawer.Thaw()
					d.ioFreezeAsync(false)
					if err != nil {
						s.Logger.Error("thawing after an abort failed", "err", err)
					}
				} else {
					d.ioFreezeAsync(false)
				}
			}()
		}
	case ActThaw:
		if op.thawer == nil {
			return
		}
		err := op.thawer.Thaw()
		if err == nil || errors.Is(err, ErrThawedEarly) {
			d.ioFreeze(false)
		}
		if errors.Is(err, ErrThawedEarly) && d.s.State() != SyncThaw {
			err = nil // an abort after the deadline: nothing left to undo
		}
		if err != nil {
			op.thawFailed = true
			s.Logger.Error("thaw failed", "err", err)
			d.queue = append(d.queue, InThawFailed)
			return
		}
		s.Logger.Info("thawed", "frozen_for", time.Since(op.thawer.at).Round(time.Millisecond))
	case ActManifest:
		d.manifest()
	case ActNext:
		d.queue = append(d.queue, InNext)
	case ActFinalize:
		d.sendEvent(Event{EvDone, Success, ""}, false)
		if op.thawer != nil {
			op.thawer.Thaw() // already done on every path; a no-op then
			op.thawer.stop()
		}
		d.stopTimers()
		if op.async == nil { // no worker left that may still freeze
			d.ioFreeze(false)
		}
		s.op = nil
		s.Logger.Info("quiesce operation finished", "took", time.Since(op.start).Round(time.Millisecond))
	}
}

// result handles the end of the running phase.
func (d *driver) result(r asyncResult) {
	op := d.s.op
	switch {
	case r.scripts != nil:
		if op.runningOp == OpFreeze {
			op.froze = r.scripts.Stopped
		}
		switch {
		case r.scripts.NotRun != nil:
			d.feed(InScriptsNotRun)
		case r.scripts.Failed != nil:
			d.feed(InScriptsFailed)
		default:
			d.feed(InScriptsOK)
		}
	case r.err != nil:
		d.ioFreeze(false) // the driver thawed what it froze
		d.s.Logger.Error("freeze failed", "provider", op.prov.Name(), "err", r.err)
		d.feed(InFreezeFailed)
	default:
		op.thawer = newGuardedThaw(r.thawer, op.deadline, d.s.Logger, d.s.logHold.release)
		d.s.Logger.Info("frozen", "provider", op.prov.Name(), "since_start", time.Since(op.start).Round(time.Millisecond))
		d.feed(InFrozen)
	}
}

// sendEvent sends e with a deadline; on success the keep-alive is
// re-armed. A failure aborts the operation when abortOnFail.
func (d *driver) sendEvent(e Event, abortOnFail bool) bool {
	s := d.s
	ctx, cancel := context.WithTimeout(d.ctx, cmp(s.SendTimeout, SendTimeout))
	defer cancel()
	_, err := s.RPCI.Call(ctx, e.Request())
	if err != nil {
		s.Logger.Warn("vmbackup event not delivered", "event", e.String(), "err", err)
		if abortOnFail && s.op != nil && !s.op.rpcFailed {
			s.op.rpcFailed = true
			d.queue = append(d.queue, InRPCFailed)
		}
		return false
	}
	d.armKeep()
	return true
}

func (d *driver) manifest() {
	op, s := d.s.op, d.s
	if !op.args.GenerateManifests || !op.set.EnableXMLManifest || op.thawer == nil || !op.thawer.t.Quiescing() {
		return
	}
	path := filepath.Join(op.set.ManifestDir, ManifestName)
	body := fmt.Sprintf("<quiesceManifest version=\"0x0\">\n   <productVersion>%d</productVersion>\n   <providerName>%s</providerName>\n</quiesceManifest>\n", ManifestToolsVersion, op.prov.Name())
	os.Remove(path)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		s.Logger.Warn("cannot write the quiesce manifest", "path", path, "err", err)
		return
	}
	d.sendEvent(Event{EvGenericManifest, Success, path}, false)
}

// ManifestToolsVersion is the numeric tools version in the manifest
// (12.2.0 = 12352, as Debian's peer reports).
const ManifestToolsVersion = 12352

// shutdown thaws and stops whatever runs when the daemon stops.
func (d *driver) shutdown() {
	op := d.s.op
	if op == nil {
		return
	}
	d.s.Logger.Warn("stopping in the middle of a quiesce operation; thawing", "state", d.s.State())
	if op.cancelAsync != nil {
		op.cancelAsync()
		if r := <-op.async; r.thawer != nil {
			r.thawer.Thaw()
		}
	}
	if op.thawer != nil {
		if err := op.thawer.Thaw(); err != nil {
			d.s.Logger.Error("thaw at shutdown failed", "err", err)
		}
		op.thawer.stop()
	}
	d.ioFreeze(false)
	d.s.op = nil
	d.s.state.Store(int32(Idle))
}

// ioFreeze holds or releases the logs and tells OnIOFreeze, on Run's
// goroutine.
func (d *driver) ioFreeze(frozen bool) {
	if frozen == d.ioFrozen {
		if !frozen {
			d.s.logHold.release() // after an ioFreezeAsync, harmless
		}
		return
	}
	d.ioFrozen = frozen
	if frozen {
		d.s.logHold.hold()
	} else {
		d.s.logHold.release()
	}
	if d.s.OnIOFreeze != nil {
		d.s.OnIOFreeze(frozen)
	}
}

// ioFreezeAsync is ioFreeze(false) from another goroutine: the release is
// safe anywhere; OnIOFreeze is told by the next finalize.
func (d *driver) ioFreezeAsync(bool) { d.s.logHold.release() }

// guardedThaw adds the in-process thaw deadline to a Thawer: a timer
// goroutine that needs no lock the state machine holds.
type guardedThaw struct {
	t     Thawer
	at    time.Time
	timer *time.Timer

	onThawed func() // releases the held logs

	mu      sync.Mutex
	expired bool
}

func newGuardedThaw(t Thawer, deadline time.Time, lg *slog.Logger, onThawed func()) *guardedThaw {
	g := &guardedThaw{t: t, at: time.Now(), onThawed: onThawed}
	g.timer = time.AfterFunc(time.Until(deadline), func() {
		g.mu.Lock()
		g.expired = true
		g.mu.Unlock()
		err := t.Thaw()
		if g.onThawed != nil {
			g.onThawed()
		}
		lg.Error("thaw deadline reached: thawed without snapshotDone", "err", err)
	})
	return g
}

// Thaw thaws (once); after the deadline fired it reports ErrThawedEarly.
func (g *guardedThaw) Thaw() error {
	g.timer.Stop()
	g.mu.Lock()
	expired := g.expired
	g.mu.Unlock()
	err := g.t.Thaw()
	if expired && err == nil {
		return ErrThawedEarly
	}
	return err
}

func (g *guardedThaw) stop() { g.timer.Stop() }
