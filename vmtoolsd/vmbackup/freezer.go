package vmbackup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
)

// Frozen is one file system a Freezer froze.
type Frozen struct {
	Path string
	Fsid [2]int64
	FD   int // the Freezer's handle; -1 for fakes
	// Simulated marks a freeze that was only recorded (SimFreezer): the
	// guard is not asked to thaw it.
	Simulated bool
}

// FreezeError is a Freezer failure with the step and the fsid (for the
// EBUSY rule) when known.
type FreezeError struct {
	Path string
	Op   string // "open", "fstat", "freeze"
	Fsid [2]int64
	Err  error
}

func (e *FreezeError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }
func (e *FreezeError) Unwrap() error { return e.Err }

// ErrNotDir is a Freezer's answer for a mount point that is not a
// directory (a bind-mounted file or socket): skipped.
var ErrNotDir = errors.New("not a directory")

// Freezer freezes and thaws one file system. LinuxFreezer issues the
// FIFREEZE/FITHAW ioctls; unit tests inject fakes, and no test may hand
// the real one a file system it did not create.
type Freezer interface {
	Freeze(path string) (Frozen, error)
	Thaw(f Frozen) error
	// Close releases f's handle (after a thaw, or for a skipped path).
	Close(f Frozen)
}

// Guard is the thaw watchdog outside this process (see GuardMain): told
// each path before its FIFREEZE (Pending) and the outcome after it
// (Settle), it thaws the paths we froze if this process dies or the
// deadline passes, and never one we did not freeze. Done ends it after a
// normal thaw.
type Guard interface {
	Pending(path string) error
	Settle(frozen bool) error
	Done()
}

// StartGuard starts a Guard whose own deadline is d.
type StartGuard func(d Deadline) (Guard, error)

// Provider quiesces the file systems.
type Provider interface {
	Name() string
	// Freeze quiesces; ctx ends an abort (it must still return, and the
	// Thawed it returns, if any, must then be thawed).
	Freeze(ctx context.Context, guardDeadline Deadline) (Thawer, error)
}

// Thawer undoes one freeze. Thaw may be called many times (the abort
// path, the in-process watchdog, shutdown); the first call thaws, later
// ones return its result.
type Thawer interface {
	Thaw() error
	// Quiescing is false for the null providers (no manifest).
	Quiescing() bool
}

// Deadline is the wall-clock budget of a freeze, handed to the guard.
type Deadline = int64 // seconds, 0 = none

// nullProvider is sync(2) only: enableSyncDriver=false, or the null
// driver fallback.
type nullProvider struct {
	name string
	sync func()
}

func (p nullProvider) Name() string { return p.name }
func (p nullProvider) Freeze(context.Context, Deadline) (Thawer, error) {
	p.sync()
	return nullThawer{}, nil
}

type nullThawer struct{}

func (nullThawer) Thaw() error     { return nil }
func (nullThawer) Quiescing() bool { return false }

// SyncDriver is the Linux sync driver: FIFREEZE on every selected mount,
// in SelectMounts' order, with vmtoolsd's error rules.
type SyncDriver struct {
	Freezer    Freezer
	Mounts     func() ([]Mount, error)
	Excluded   string
	IgnoreBusy bool           // ignoreFrozenFileSystems
	NullOK     bool           // enableNullDriver: sync(2) when FIFREEZE is unavailable
	Sync       func()         // sync(2)
	Guard      StartGuard     // nil: no out-of-process watchdog
	Logger     *slog.Logger   // never nil
	OnFrozen   func([]string) // test hook: the paths once all are frozen
}

// Name is the backend name used in the manifest.
func (d *SyncDriver) Name() string { return "fifreeze" }

// Freeze freezes the selected mounts. On any failure what it froze is
// thawed, newest first, before it returns.
func (d *SyncDriver) Freeze(ctx context.Context, dl Deadline) (Thawer, error) {
	all, err := d.Mounts()
	if err != nil {
		return nil, err
	}
	list, skipped := SelectMounts(all, d.Excluded)
	for _, s := range skipped {
		d.Logger.Debug("not freezing", "path", s.Mount.Path, "type", s.Mount.FSType, "reason", s.Reason)
	}
	if len(list) == 0 {
		return nil, ErrNoFileSystems
	}
	set := &frozenSet{freezer: d.Freezer, logger: d.Logger}
	if d.Guard != nil {
		g, err := d.Guard(dl)
		if err != nil {
			return nil, fmt.Errorf("starting the thaw guard: %w", err)
		}
		set.guard = g
	}
	fail := func(err error) (Thawer, error) {
		if terr := set.Thaw(); terr != nil {
			err = errors.Join(err, terr)
		}
		return nil, err
	}
	first := true
	for _, m := range list {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if set.guard != nil {
			// The guard learns the path before the freeze: if we die
			// inside FIFREEZE it still thaws it (FITHAW on a file system
			// that is not frozen is a harmless EINVAL).
			if err := set.guard.Pending(m.Path); err != nil {
				return fail(fmt.Errorf("thaw guard: %w", err))
			}
		}
		f, err := d.Freezer.Freeze(m.Path)
		if set.guard != nil {
			if gerr := set.guard.Settle(err == nil && !f.Simulated); gerr != nil {
				if err == nil {
					set.add(f)
				}
				return fail(fmt.Errorf("thaw guard: %w", gerr))
			}
		}
		wasFirst := first
		first = false
		if err == nil {
			set.add(f)
			continue
		}
		var fe *FreezeError
		errors.As(err, &fe)
		switch {
		case errors.Is(err, ErrNotDir), fe != nil && fe.Op == "open" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENOTDIR)):
			d.Logger.Info("not freezing", "path", m.Path, "err", err)
		case errors.Is(err, syscall.EOPNOTSUPP):
			d.Logger.Info("file system cannot be frozen; skipped", "path", m.Path, "type", m.FSType)
		case errors.Is(err, syscall.EBUSY) && fe != nil && set.hasFsid(fe.Fsid):
			d.Logger.Debug("already frozen in this operation", "path", m.Path)
		case errors.Is(err, syscall.EBUSY) && d.IgnoreBusy:
			d.Logger.Warn("file system frozen by another process; skipped (ignoreFrozenFileSystems)", "path", m.Path)
		case errors.Is(err, syscall.EBUSY):
			d.Logger.Error("file system appears locked or frozen by another process", "path", m.Path)
			return fail(err)
		case errors.Is(err, syscall.ENOTTY) && wasFirst && d.NullOK:
			d.Logger.Warn("FIFREEZE is not available; falling back to sync(2) (the snapshot is not quiesced)", "path", m.Path)
			set.Thaw()
			d.Sync()
			return nullThawer{}, nil
		default:
			return fail(err)
		}
	}
	if d.OnFrozen != nil {
		d.OnFrozen(set.paths())
	}
	return set, nil
}

// frozenSet is what one Freeze froze; Thaw thaws newest first, goes on
// past errors, and runs once.
type frozenSet struct {
	freezer Freezer
	logger  *slog.Logger
	guard   Guard

	mu     sync.Mutex
	frozen []Frozen
	done   bool
	err    error
}

func (s *frozenSet) add(f Frozen) {
	s.mu.Lock()
	s.frozen = append(s.frozen, f)
	s.mu.Unlock()
}

func (s *frozenSet) hasFsid(id [2]int64) bool {
	if id == ([2]int64{}) {
		return false // unknown (fstatfs failed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.frozen {
		if f.Fsid == id {
			return true
		}
	}
	return false
}

func (s *frozenSet) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p []string
	for _, f := range s.frozen {
		p = append(p, f.Path)
	}
	return p
}

func (s *frozenSet) Quiescing() bool { return true }

func (s *frozenSet) Thaw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.err
	}
	s.done = true
	var errs []error
	for i := len(s.frozen) - 1; i >= 0; i-- {
		f := s.frozen[i]
		if err := s.freezer.Thaw(f); err != nil {
			errs = append(errs, fmt.Errorf("thaw %s: %w", f.Path, err))
		}
		s.freezer.Close(f)
	}
	s.err = errors.Join(errs...)
	if s.guard != nil {
		if s.err == nil {
			s.guard.Done()
		} // on a thaw error the guard stays and retries at its deadline or our exit
	}
	return s.err
}

// SimFreezer is the Freezer of a daemon running under vmxsim
// (GOVMTOOLS_SIMULATED=1), where the machine is not a VM and its file
// systems must never freeze: a freeze of a path outside Allow is logged
// ("simulated FIFREEZE") and not executed; paths in Allow (loop file
// systems a test mounted) go to Inner.
type SimFreezer struct {
	Allow  []string
	Inner  Freezer
	Logger *slog.Logger
}

func (s *SimFreezer) allowed(p string) bool { return slices.Contains(s.Allow, p) }

// Freeze freezes an allowed path, and only records the others.
func (s *SimFreezer) Freeze(p string) (Frozen, error) {
	if s.allowed(p) {
		return s.Inner.Freeze(p)
	}
	s.Logger.Info("simulated FIFREEZE (not executed)", "path", p)
	return Frozen{Path: p, FD: -1, Simulated: true}, nil
}

// Thaw thaws an allowed path, and only records the others.
func (s *SimFreezer) Thaw(f Frozen) error {
	if !f.Simulated {
		return s.Inner.Thaw(f)
	}
	s.Logger.Info("simulated FITHAW (not executed)", "path", f.Path)
	return nil
}

// Close closes an allowed path's handle.
func (s *SimFreezer) Close(f Frozen) {
	if !f.Simulated {
		s.Inner.Close(f)
	}
}
