package toolsconf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher holds the current tools.conf and reloads it when it changes.
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

	mu      sync.Mutex
	cur     *File
	raw     []byte
	loaded  bool
	warned  map[string]bool
	readErr string
}

// Load reads the file once, logging its problems. It never fails.
func (w *Watcher) Load() *File {
	w.reload(false)
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
		w.reload(false)
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
		w.reload(true)
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
			w.reload(true)
		}
	}
}

// reload reads the file and, if its content changed, parses it, logs new
// problems and calls OnChange (when notify is set).
func (w *Watcher) reload(notify bool) {
	data, err := os.ReadFile(w.Path)
	readErr := ""
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		readErr = err.Error()
	}
	if err != nil {
		data = nil
	}
	w.mu.Lock()
	if w.loaded && string(data) == string(w.raw) && readErr == w.readErr {
		w.mu.Unlock()
		return
	}
	first := !w.loaded
	w.loaded = true
	w.raw = data
	w.readErr = readErr
	f, problems := Parse(data)
	problems = append(problems, w.Schema.Check(f)...)
	w.cur = f
	if w.warned == nil {
		w.warned = map[string]bool{}
	}
	var fresh []string
	for _, p := range problems {
		s := p.String()
		if !w.warned[s] {
			w.warned[s] = true
			fresh = append(fresh, s)
		}
	}
	if readErr != "" && !w.warned["read:"+readErr] {
		w.warned["read:"+readErr] = true
		fresh = append(fresh, "cannot read: "+readErr+" (using defaults)")
	}
	cb := w.OnChange
	w.mu.Unlock()

	lg := w.logger()
	for _, s := range fresh {
		lg.Warn("tools.conf: "+s, "path", w.Path)
	}
	if !first {
		lg.Info("tools.conf reloaded", "path", w.Path)
	}
	if notify && !first && cb != nil {
		cb(f)
	}
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}
