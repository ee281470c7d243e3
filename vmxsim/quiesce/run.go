package quiesce

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Take takes the snapshot itself once the guest is frozen (or at once
// without quiesce). discard, if not nil, removes it again when the
// operation fails afterwards (the guest thawed too early, for example).
type Take func(ctx context.Context) (discard func(), err error)

// Snapshot runs one snapshot operation and returns its record; a failure
// is an *Error with the vSphere fault. take may be nil (nothing to take:
// `vmxsim ctl snapshot` without a vSphere front end).
func (d *Driver) Snapshot(ctx context.Context, opts Options, take Take) (Result, error) {
	if take == nil {
		take = func(context.Context) (func(), error) { return nil, nil }
	}
	d.mu.Lock()
	if opts.DelayDone == 0 {
		opts.DelayDone = Duration(d.delay)
	}
	d.mu.Unlock()
	o, err := d.begin(opts)
	if err != nil {
		return Result{Fault: FaultInProgress, Message: MsgInProgress}, err
	}
	err = d.run(ctx, o, opts, take)
	d.mu.Lock()
	o.res.Running = false
	var fe *Error
	if errors.As(err, &fe) {
		o.res.Fault, o.res.Message = fe.Fault, fe.Message
	}
	d.cur = nil
	res := o.res
	res.Events = append([]Event{}, res.Events...)
	d.mu.Unlock()
	if err != nil {
		d.host.Remark("Snapshot: quiesced snapshot failed: %s", err)
	} else {
		d.host.Remark("Snapshot: snapshot %d taken (quiesced = %t)", res.ID, res.Quiesced)
	}
	return res, err
}

func (d *Driver) begin(opts Options) (*op, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != nil {
		return nil, &Error{Fault: FaultInProgress, Message: MsgInProgress}
	}
	d.nextID++
	o := &op{begun: time.Now(), wake: make(chan struct{}, 1), abort: make(chan struct{})}
	o.res = Result{ID: d.nextID, Running: true, Events: []Event{}, StartToCommitMs: -1, DoneToThawedMs: -1, DoneToFinishMs: -1}
	d.cur = o
	d.ops = append(d.ops, o)
	if len(d.ops) > maxOps {
		d.ops = d.ops[1:]
	}
	return o, nil
}

// progress is what the guest's events said so far.
type progress struct {
	seen      int    // events consumed
	committed bool   // prov.snapshotCommit
	done      bool   // req.done
	latched   *Event // the first req.error or req.aborted
}

func (d *Driver) run(ctx context.Context, o *op, opts Options, take Take) error {
	if !opts.Quiesce {
		_, err := take(ctx)
		if err != nil {
			return &Error{Fault: FaultSnapshotTaken, Message: err.Error()}
		}
		return nil
	}
	idle := time.Duration(opts.EventTimeout)
	if idle <= 0 {
		idle = DefaultEventTimeout
	}
	total := time.Duration(opts.Timeout)
	if total <= 0 {
		total = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()

	start := "vmbackup.start"
	args := DefaultStartArgs
	if opts.StartArgs != nil {
		args = *opts.StartArgs
	}
	if args != "" {
		start += " " + args
	}
	d.mu.Lock()
	o.res.Start = start
	d.mu.Unlock()
	t0 := time.Now()
	reply, err := d.send(ctx, o, start)
	switch {
	case err != nil && d.host.NoTools != nil && errors.Is(err, d.host.NoTools):
		return &Error{Fault: FaultToolsDown, Message: MsgToolsDown}
	case err != nil:
		return &Error{Fault: FaultTimedout, Message: MsgTimedOut + " (" + err.Error() + ")"}
	case !strings.HasPrefix(string(reply), "OK"):
		return &Error{Fault: FaultSnapshot, Message: MsgQuiesce + " The guest refused to quiesce: " + strings.TrimPrefix(string(reply), "ERROR ")}
	}

	var p progress
	if err := d.wait(ctx, o, &p, idle, func() bool { return p.committed || p.done }); err != nil {
		return d.abortTimedOut(o, err)
	}
	if !p.committed {
		return d.guestFault(o, &p)
	}
	d.mu.Lock()
	o.res.StartToCommitMs = ms(time.Since(t0))
	d.mu.Unlock()

	discard, takeErr := take(ctx)
	if takeErr == nil && opts.DelayDone > 0 {
		d.host.Remark("Snapshot: fault injection: holding snapshotDone back %v", time.Duration(opts.DelayDone))
		d.hold(ctx, o, &p, time.Duration(opts.DelayDone))
	}
	if d.aborted(o) {
		undo(discard)
		d.wait(ctx, o, &p, idle, func() bool { return p.done })
		return &Error{Fault: FaultCanceled, Message: MsgCanceled}
	}
	t1 := time.Now()
	reply, err = d.send(ctx, o, "vmbackup.snapshotDone")
	if err == nil {
		d.mu.Lock()
		o.res.DoneToThawedMs = ms(time.Since(t1))
		d.mu.Unlock()
	}
	if takeErr != nil {
		if err == nil {
			d.wait(ctx, o, &p, idle, func() bool { return p.done })
		}
		return &Error{Fault: FaultSnapshotTaken, Message: takeErr.Error()}
	}
	if err != nil || !strings.HasPrefix(string(reply), "OK") {
		// The guest was no longer frozen (its own timer thawed it), or
		// is gone: the snapshot is not consistent and is rolled back.
		undo(discard)
		if err == nil {
			d.wait(ctx, o, &p, idle, func() bool { return p.done })
		}
		return &Error{Fault: FaultFilesystem, Message: MsgFrozenLong}
	}
	if err := d.wait(ctx, o, &p, idle, func() bool { return p.done }); err != nil {
		undo(discard)
		return d.abortTimedOut(o, err)
	}
	d.mu.Lock()
	o.res.DoneToFinishMs = ms(time.Since(t1))
	d.mu.Unlock()
	if l := p.latched; l != nil && (l.Name == EventAborted || l.Code == CodeSyncError) {
		// Thawed early, or the thaw failed.
		undo(discard)
		return &Error{Fault: FaultFilesystem, Message: MsgFrozenLong}
	}
	d.mu.Lock()
	o.res.Quiesced = true
	if l := p.latched; l != nil {
		// A thaw script failed: the snapshot is consistent and kept,
		// with the guest's report.
		o.res.Message = "The guest reported an error after the snapshot: " + l.String()
	}
	d.mu.Unlock()
	return nil
}

func undo(discard func()) {
	if discard != nil {
		discard()
	}
}

// send sends one TCLO command and records it with its reply.
func (d *Driver) send(ctx context.Context, o *op, cmd string) ([]byte, error) {
	reply, err := d.host.Send(ctx, cmd)
	d.record(o, cmd, reply, err)
	return reply, err
}

func (d *Driver) record(o *op, cmd string, reply []byte, err error) {
	r := string(reply)
	if err != nil {
		r = "error: " + err.Error()
	}
	d.mu.Lock()
	o.res.Replies = append(o.res.Replies, Reply{Cmd: cmd, Reply: r})
	d.mu.Unlock()
}

func (d *Driver) aborted(o *op) bool {
	select {
	case <-o.abort:
		return true
	default:
		return false
	}
}

// errIdle is the guest staying silent for the event timeout.
var errIdle = errors.New("no event from the guest")

// wait consumes the guest's events until until() holds, the guest is
// silent for idle, or ctx ends.
func (d *Driver) wait(ctx context.Context, o *op, p *progress, idle time.Duration, until func() bool) error {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		d.mu.Lock()
		evs := o.res.Events[p.seen:]
		for _, e := range evs {
			switch e.Name {
			case EventCommit:
				p.committed = true
			case EventDone:
				p.done = true
			case EventManifest:
				o.res.Manifest = e.Message
			case EventError, EventAborted:
				if p.latched == nil {
					e := e
					p.latched = &e
				}
			}
		}
		p.seen += len(evs)
		d.mu.Unlock()
		if until() {
			return nil
		}
		if len(evs) > 0 {
			timer.Reset(idle)
		}
		select {
		case <-o.wake:
		case <-timer.C:
			return errIdle
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// hold holds snapshotDone back for delay (fault injection); it ends
// early when the host aborts or the guest has finished on its own (its
// timer thawed it), since nothing is frozen then.
func (d *Driver) hold(ctx context.Context, o *op, p *progress, delay time.Duration) {
	hctx, cancel := context.WithTimeout(ctx, delay)
	defer cancel()
	go func() {
		select {
		case <-o.abort:
			cancel()
		case <-hctx.Done():
		}
	}()
	// wait returns at the deadline (ctx error) or once req.done is in.
	d.wait(hctx, o, p, delay+time.Second, func() bool { return p.done })
}

// abortTimedOut tells the guest to give up (it thaws if frozen) and
// fails with Timedout.
func (d *Driver) abortTimedOut(o *op, cause error) error {
	actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.send(actx, o, "vmbackup.abort")
	return &Error{Fault: FaultTimedout, Message: fmt.Sprintf("%s (%v)", MsgTimedOut, cause)}
}

// guestFault maps a quiesce that ended (req.done) without a commit.
func (d *Driver) guestFault(o *op, p *progress) error {
	l := p.latched
	switch {
	case d.aborted(o):
		return &Error{Fault: FaultCanceled, Message: MsgCanceled}
	case l == nil:
		return &Error{Fault: FaultSnapshot, Message: MsgQuiesce}
	case l.Name == EventAborted:
		// The guest's own timer gave up before the freeze.
		return &Error{Fault: FaultTimedout, Message: MsgTimedOut}
	}
	msg := fmt.Sprintf("%s The guest OS has reported an error during quiescing. The error code was: %d The error message was: %s", MsgQuiesce, l.Code, l.Message)
	if l.Code == CodeScriptError {
		return &Error{Fault: FaultApplication, Message: msg}
	}
	return &Error{Fault: FaultSnapshot, Message: msg}
}
