package vmbackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Script locations.
const (
	DefaultScriptsDir = "/etc/vmware-tools/backupScripts.d"
	LegacyPreFreeze   = "/usr/sbin/pre-freeze-script"
	LegacyPostThaw    = "/usr/sbin/post-thaw-script"
)

// ErrScriptRefused marks a script (or its directory) that is not owned by
// root or is writable by group or others: it is not run, and the phase
// fails as if it could not start.
var ErrScriptRefused = errors.New("refused: not owned by root or writable by group/others")

// Scripts runs the backup scripts as vmtoolsd does: the entries of Dir
// that are regular files (symlinks followed; dotfiles included; no
// executable-bit check) sorted by byte order, plus the legacy pair in
// slot 0. freeze runs them ascending, pre-freeze-script first; thaw and
// freezeFail descending, post-thaw-script last.
type Scripts struct {
	Dir       string // "" means DefaultScriptsDir
	PreFreeze string // "" means LegacyPreFreeze; "-" none
	PostThaw  string // "" means LegacyPostThaw; "-" none
	// Owner is the uid scripts and their directory must have (0 in
	// production; tests running unprivileged set their own).
	Owner uint32
	// Stdout and Stderr receive the scripts' output; nil inherits ours
	// (the journal under systemd).
	Stdout, Stderr io.Writer
	Logger         *slog.Logger
}

// slot is one script position: for slot 0, Path is the legacy freeze
// script and ThawPath the legacy thaw script.
type slot struct {
	Path, ThawPath string
}

func (s *Scripts) dir() string { return orDefault(s.Dir, DefaultScriptsDir) }

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	if v == "-" {
		return ""
	}
	return v
}

// List returns the script slots in freeze order.
func (s *Scripts) List() []slot {
	pre, post := orDefault(s.PreFreeze, LegacyPreFreeze), orDefault(s.PostThaw, LegacyPostThaw)
	var slots []slot
	if exists(pre) || exists(post) {
		slots = append(slots, slot{Path: existing(pre), ThawPath: existing(post)})
	}
	ents, err := os.ReadDir(s.dir())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.Logger.Warn("cannot read the backup scripts directory", "dir", s.dir(), "err", err)
		}
		return slots
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names) // byte order, as strcmp
	for _, n := range names {
		p := filepath.Join(s.dir(), n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			slots = append(slots, slot{Path: p, ThawPath: p})
		}
	}
	return slots
}

func exists(p string) bool {
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

func existing(p string) string {
	if exists(p) {
		return p
	}
	return ""
}

// PhaseResult is how a phase ended.
type PhaseResult struct {
	Failed  error // a script exited non-zero or died (first failure)
	NotRun  error // a script could not be started or was refused
	Stopped int   // freeze: the index of the slot that failed, else len(slots)
}

// Run runs phase op over slots[:n] (freeze: ascending; thaw and
// freezeFail: descending), each limited by perScript (0 = none) and all
// by ctx. A freeze stops at the first failure; thaw and freezeFail go on
// and report the first failure at the end. arg is scriptArg.
func (s *Scripts) Run(ctx context.Context, op Op, slots []slot, arg string, perScript time.Duration) PhaseResult {
	res := PhaseResult{Stopped: len(slots)}
	order := make([]int, len(slots))
	for i := range order {
		order[i] = i
	}
	if op != OpFreeze {
		slices.Reverse(order)
	}
	for _, i := range order {
		path := slots[i].Path
		if op != OpFreeze {
			path = slots[i].ThawPath
		}
		if path == "" {
			continue
		}
		err := s.runOne(ctx, path, op, arg, perScript)
		if err == nil {
			continue
		}
		s.Logger.Error("backup script failed", "script", path, "op", string(op), "err", err)
		var notRun *notStarted
		if errors.As(err, &notRun) {
			if res.NotRun == nil {
				res.NotRun = err
			}
		} else if res.Failed == nil {
			res.Failed = err
		}
		if op == OpFreeze {
			res.Stopped = i
			return res
		}
		if ctx.Err() != nil {
			return res
		}
	}
	return res
}

type notStarted struct{ err error }

func (e *notStarted) Error() string { return e.err.Error() }
func (e *notStarted) Unwrap() error { return e.err }

// checkOwner refuses a script or directory that root would run but that
// someone else could have written.
func (s *Scripts) checkOwner(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok || sys.Uid != s.Owner || st.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s: %w", p, ErrScriptRefused)
		}
	}
	return nil
}

// runOne runs "path op [arg]" in its own process group. Scripts without
// a "#!" line run under /bin/sh, as bash -c would run them; scriptArg is
// passed as one argument and not expanded by a shell (vmtoolsd runs the
// line through bash -c, which expands $ and backquotes in it).
func (s *Scripts) runOne(ctx context.Context, path string, op Op, arg string, perScript time.Duration) error {
	if err := s.checkOwner(path); err != nil {
		return &notStarted{err}
	}
	if perScript > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, perScript)
		defer cancel()
	}
	argv := []string{path, string(op)}
	if arg != "" {
		argv = append(argv, arg)
	}
	if !hasShebang(path) {
		argv = append([]string{"/bin/sh"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return &notStarted{err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The whole group, so the script's children go too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s %s: killed: %w", path, op, context.Cause(ctx))
	}
}

func hasShebang(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true // let exec report it
	}
	defer f.Close()
	b := make([]byte, 2)
	n, _ := io.ReadFull(f, b)
	return n == 2 && string(b) == "#!"
}
