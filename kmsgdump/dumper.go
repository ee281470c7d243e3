package kmsgdump

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

// Config configures a Dumper.
type Config struct {
	// Shipper delivers lines to vmware.log. New sets its Opened to
	// record each resumable channel in the state directory.
	Shipper *Shipper
	// StateDir is the state directory (see Store).
	StateDir string
	// PstoreDir and CrashDir are where saved records are looked for;
	// "" skips one.
	PstoreDir, CrashDir string
	// PstoreAfter and CrashAfter say what becomes of shipped records;
	// "" means Keep.
	PstoreAfter, CrashAfter Disposition
	// Boot is the current boot.
	Boot Boot

	// Follow streams the kernel log after the saved records.
	Follow bool
	// KmsgPath is the kernel log to follow (/dev/kmsg).
	KmsgPath string
	// Level is the least severe level shipped (kmsg.LevelWarning: warning
	// and worse).
	Level int
	// Triggers mark incidents; nil means DefaultTriggers().
	Triggers []Trigger
	// Before and After are the context records shipped around a trigger.
	Before, After int
	// Rate and Burst limit live lines (0 Rate: no limit).
	Rate  float64
	Burst int
	// QueueLines and QueueBytes bound the live queue; 0 means 4096 lines
	// and 1 MiB.
	QueueLines, QueueBytes int
	// Ready, if set, is called once the saved records are shipped (with
	// the number shipped and any error) and, when following, the kernel
	// log is open.
	Ready func(shipped int, err error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the dumper's own diagnostics; nil discards them.
	Logger *slog.Logger
}

// Dumper ships saved kernel logs and, when following, the live kernel log.
type Dumper struct {
	cfg   Config
	store *Store
	queue atomic.Pointer[Queue] // the live queue while Run follows

	// Owned by the shipping goroutine (set by settle).
	settled bool
	unsure  inflight // the line in flight at the last kill, if it could not be settled
}

// New opens the state directory and returns a dumper.
func New(cfg Config) (*Dumper, error) {
	if cfg.Shipper == nil {
		return nil, errors.New("kmsgdump: no shipper")
	}
	if cfg.Triggers == nil {
		cfg.Triggers = DefaultTriggers()
	}
	if cfg.QueueLines <= 0 {
		cfg.QueueLines = 4096
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := OpenStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.Shipper.Opened = st.SetChannel
	return &Dumper{cfg: cfg, store: st}, nil
}

// Close releases the state directory.
func (d *Dumper) Close() error { return d.store.Close() }

func (d *Dumper) log() *slog.Logger { return d.cfg.Logger }

// ShipSaved ships the saved records once and returns how many it shipped.
func (d *Dumper) ShipSaved(ctx context.Context) (int, error) {
	return d.shipSaved(ctx)
}

// Run ships the saved records and, with Follow, then streams the kernel
// log until ctx ends. The kernel log is opened (and read into the bounded
// queue) before the saved records are shipped, so nothing is missed while
// they go out. Run returns after every goroutine it started has ended;
// with Follow it returns nil when ctx ends.
func (d *Dumper) Run(ctx context.Context) error {
	if !d.cfg.Follow {
		n, err := d.ShipSaved(ctx)
		if d.cfg.Ready != nil {
			d.cfg.Ready(n, err)
		}
		return err
	}
	// Settle the line a killed run left in flight before the cursor is
	// read: it may move the cursor.
	if err := d.settle(ctx); err != nil {
		return err
	}
	src, resumeFrom, err := d.openKmsg()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()

	q := NewQueue(d.cfg.QueueLines, d.cfg.QueueBytes)
	d.queue.Store(q)
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		readErr = d.read(ctx, src, resumeFrom, q)
		if readErr != nil {
			cancel()
		}
	})
	var shipErr error
	wg.Go(func() {
		n, err := d.ShipSaved(ctx)
		if err != nil && ctx.Err() == nil {
			d.log().Error("shipping saved records failed; following the kernel log anyway", "err", err)
		}
		if d.cfg.Ready != nil {
			d.cfg.Ready(n, err)
		}
		shipErr = d.shipLive(ctx, q)
	})
	wg.Wait()
	src.Close()
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return readErr
	}
	if shipErr != nil && !errors.Is(shipErr, context.Canceled) {
		return shipErr
	}
	return nil
}

// openKmsg opens the kernel log where this boot's reading left off, or at
// its end on a new boot (or a first run). It returns the first sequence
// number to ship, 0 for none to skip.
func (d *Dumper) openKmsg() (*Source, uint64, error) {
	boot, next := d.store.Cursor()
	resume := boot == d.cfg.Boot.ID && d.cfg.Boot.ID != "" && next > 0
	src, err := OpenSource(d.cfg.KmsgPath, !resume, d.log())
	if err != nil {
		return nil, 0, err
	}
	if resume {
		d.log().Info("resuming the kernel log", "seq", next)
		return src, next, nil
	}
	return src, 0, nil
}

// read turns kernel records into queued items until ctx ends.
func (d *Dumper) read(ctx context.Context, src *Source, resumeFrom uint64, q *Queue) error {
	f := &Filter{Level: d.cfg.Level, Triggers: d.cfg.Triggers, Before: d.cfg.Before, After: d.cfg.After}
	if resumeFrom > 0 {
		f.Resume(resumeFrom - 1)
	}
	lim := &Limiter{Rate: d.cfg.Rate, Burst: d.cfg.Burst, Now: d.cfg.Now}
	recs := make(chan kmsg.Record)
	var rerr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(recs)
		for {
			r, err := src.Read(ctx)
			if err != nil {
				rerr = err
				return
			}
			if resumeFrom > 0 && r.Seq < resumeFrom {
				continue // dealt with before the restart
			}
			select {
			case recs <- r:
			case <-ctx.Done():
				return
			}
		}
	})
	defer wg.Wait()

	dropping := false
	enqueue := func(it Item) {
		if q.Push(it) {
			dropping = false
			return
		}
		if !dropping {
			d.log().Warn("the host is not taking lines and the live queue is full; dropping lines (their number will be shipped)")
			dropping = true
		}
		d.log().Debug("live line dropped", "dropped", q.Dropped())
	}
	push := func(items []Item) {
		for _, it := range items {
			for _, out := range lim.Allow(it) {
				enqueue(out)
			}
		}
	}
	// A held continuation record is flushed when no fragment follows
	// within contWait; suppressed-line summaries are due when the bucket
	// refills.
	const contWait = 200 * time.Millisecond
	tick := time.NewTicker(contWait)
	defer tick.Stop()
	for {
		select {
		case r, ok := <-recs:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return rerr
			}
			push(f.Push(r))
		case <-tick.C:
			push(f.Flush())
			for _, s := range lim.Summary() {
				enqueue(s)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if seq, ok := f.Undecided(); ok {
			q.SetDecided(seq)
		}
	}
}

// shipLive ships queued items and moves the saved cursor. The last line of
// a record's item is journaled (see Store), so a kill while it is in
// flight can be settled; the earlier lines of a record split over several
// lines are sent again after such a kill.
func (d *Dumper) shipLive(ctx context.Context, q *Queue) error {
	boot := d.cfg.Boot.ID
	if boot == "" {
		boot = "unknown"
	}
	if what := "kmsg:" + boot; d.unsure.what == what {
		if err := d.note(ctx, fmt.Sprintf("kmsgdump: the previous run was interrupted while sending kernel log record %d; its lines may appear twice (the host could not be asked whether it logged them)", d.unsure.n)); err != nil {
			return err
		}
	}
	var saved uint64
	for {
		it, decided, ok, err := q.Pop(ctx, saved)
		if err != nil {
			return err
		}
		if !ok {
			if err := d.store.SetCursor(boot, decided); err != nil {
				return err
			}
			saved = decided
			continue
		}
		for i, l := range it.Lines {
			var fl Flight
			if it.Seq > 0 && i == len(it.Lines)-1 {
				seq := it.Seq
				fl = &flight{store: d.store, what: "kmsg:" + boot, n: seq, arrived: func() error { return d.store.SetCursor(boot, seq+1) }}
			}
			if err := d.sendLine(ctx, l, fl); err != nil {
				return err
			}
		}
		if it.Seq > 0 && it.Seq+1 > saved {
			if len(it.Lines) == 0 {
				if err := d.store.SetCursor(boot, it.Seq+1); err != nil {
					return err
				}
			}
			saved = it.Seq + 1
		}
	}
}
