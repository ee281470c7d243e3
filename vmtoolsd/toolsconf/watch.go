package toolsconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher holds the current tools.conf and reloads it when it changes
// (and on Load). A file that fails to parse, or that anyone but root
// could change, is never applied; see reload.
// It watches the file's directory with inotify, so edits in place,
// editors' write-and-rename and the file's creation or removal are all
// seen at once; where inotify is unavailable it falls back to a stat poll.
// A missing file is an empty configuration.
type Watcher struct {
	// Path is the tools.conf to read.
	Path string
	// Schema is checked on each load; problems are logged once each.
	Schema Schema
	// OnChange, if set, is called after each reload that changed the
	// content (not for the first load done by Load).
	OnChange func(*File)
	// Logger receives problems and reloads; nil discards them.
	Logger *slog.Logger
	// PollInterval is the fallback stat poll period; 0 means 5 s (what
	// open-vm-tools polls at always).
	PollInterval time.Duration

	// Required warns when the file does not exist (vmtoolsd -c names
	// it); otherwise a missing file is quietly the defaults.
	Required bool
	// UID, if set, is the owner besides root that Trusted accepts; by
	// default the effective uid (so root accepts only root).
	UID *uint32

	mu      sync.Mutex
	cur     *File
	raw     []byte
	loaded  bool
	readErr string
}

// Load reads the file once (as SIGHUP asks), logging its problems even
// if it did not change. It never fails.
func (w *Watcher) Load() *File {
	w.reload(false, true)
	return w.Current()
}

// Current returns the configuration last loaded (an empty one before
// Load).
func (w *Watcher) Current() *File {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return &File{}
	}
	return w.cur
}

// Run watches the file until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.isLoaded() {
		w.reload(false, false)
	}
	err := w.watchInotify(ctx)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	w.logger().Warn("tools.conf: inotify unavailable; polling instead", "err", err)
	return w.poll(ctx)
}

func (w *Watcher) isLoaded() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded
}

// watchInotify returns nil when ctx ends, or an error when inotify cannot
// be used.
func (w *Watcher) watchInotify(ctx context.Context) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: Read blocks in the runtime poller
	defer f.Close()
	dir := filepath.Dir(w.Path)
	// The directory may not exist yet (no tools.conf at all); watch the
	// nearest existing ancestor and re-arm when it appears.
	const mask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ATTRIB
	watched := ""
	arm := func() error {
		target := dir
		for {
			if _, err := os.Stat(target); err == nil {
				break
			}
			parent := filepath.Dir(target)
			if parent == target {
				break
			}
			target = parent
		}
		if target == watched {
			return nil
		}
		if _, err := unix.InotifyAddWatch(fd, target, mask); err != nil {
			return fmt.Errorf("inotify_add_watch %s: %w", target, err)
		}
		watched = target
		return nil
	}
	if err := arm(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 16<<10)
	for {
		n, err := f.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("inotify read: %w", err)
		}
		if n < unix.SizeofInotifyEvent {
			continue
		}
		// Any event in the directory may concern the file (names are not
		// worth decoding: reload compares content and is cheap).
		if watched != dir {
			if err := arm(); err != nil {
				return err
			}
		}
		w.reload(true, false)
	}
}

func (w *Watcher) poll(ctx context.Context) error {
	iv := w.PollInterval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.reload(true, false)
		}
	}
}

// reload reads the file and, if its content (or the reason it cannot
// be used) changed or force is set, logs its problems and applies it,
// calling OnChange when notify is set. A file that cannot be trusted
// (Trusted), cannot be read or does not parse is not applied: the last
// good configuration stays (the defaults, at start-up), and one line
// says why, on every such load.
func (w *Watcher) reload(notify, force bool) {
	data, refused, missing := w.read()
	w.mu.Lock()
	if !force && w.loaded && string(data) == string(w.raw) && refused == w.readErr {
		w.mu.Unlock()
		return
	}
	first := !w.loaded
	kept := "keeping the previous configuration"
	if w.cur == nil {
		kept = "using the defaults"
	}
	w.loaded = true
	w.raw = data
	w.readErr = refused
	lg := w.logger()
	if refused != "" {
		w.mu.Unlock()
		lg.Error("tools.conf refused: "+refused+"; "+kept, "path", w.Path)
		return
	}
	f, problems := Parse(data)
	var syntax []string
	for _, p := range problems {
		if p.Syntax {
			syntax = append(syntax, p.String())
		}
	}
	problems = append(problems, w.Schema.Check(f)...)
	if len(syntax) > 0 {
		w.mu.Unlock()
		for _, p := range problems {
			if !p.Syntax {
				lg.Warn("tools.conf: "+p.String(), "path", w.Path)
			}
		}
		lg.Error("tools.conf does not parse: "+strings.Join(syntax, "; ")+"; "+kept, "path", w.Path)
		return
	}
	w.cur = f
	cb := w.OnChange
	w.mu.Unlock()

	if missing && w.Required {
		lg.Warn("tools.conf does not exist; using the defaults", "path", w.Path)
	}
	for _, p := range problems {
		lg.Warn("tools.conf: "+p.String(), "path", w.Path)
	}
	if !first {
		lg.Info("tools.conf reloaded", "path", w.Path)
	}
	if notify && !first && cb != nil {
		cb(f)
	}
}

// read returns the file's content, or why it may not be used; a missing
// file is empty.
func (w *Watcher) read() (data []byte, refused string, missing bool) {
	f, err := os.Open(w.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", true
	}
	if err != nil {
		return nil, "cannot read: " + err.Error(), false
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, "cannot read: " + err.Error(), false
	}
	if len(data) > maxSize {
		return nil, fmt.Sprintf("larger than %d bytes", maxSize), false
	}
	if err := trustedFor(w.Path, w.uid()); err != nil {
		return data, err.Error(), false
	}
	return data, "", false
}

// maxSize bounds tools.conf (open-vm-tools' example is 10 KiB).
const maxSize = 1 << 20

func (w *Watcher) uid() uint32 {
	if w.UID != nil {
		return *w.UID
	}
	return uint32(os.Geteuid())
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}
