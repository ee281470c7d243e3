package kmsgdump

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Store is the state directory (default /var/lib/govmtools/kmsgdump):
//
//	state.json   what was shipped and what became of it, and the boots
//	             seen; replaced atomically (write, fsync, rename, fsync
//	             of the directory) before any source file is removed
//	progress     the record being shipped and how many of its lines the
//	             host has confirmed, rewritten in place after every line
//	cursor       the boot and sequence number of the last /dev/kmsg
//	             record dealt with, rewritten in place
//	archive/     copies of shipped pstore records (per configuration)
//
// progress and cursor are single fixed-size blocks with a checksum,
// rewritten with one pwrite: a killed process leaves them exact (the page
// cache survives it); a machine crash may leave an older value, which
// repeats lines rather than losing them, and a torn block fails its
// checksum and counts as absent.
type Store struct {
	Dir string

	mu       sync.Mutex
	state    State
	progress *counterFile
	cursor   *counterFile
}

// State is the content of state.json.
type State struct {
	Version int `json:"version"`
	// Boots are the boots this daemon has run in, oldest first.
	Boots []Boot `json:"boots,omitempty"`
	// Shipped maps a saved record's key to what was done with it. An
	// entry stays while the record's files exist, so a kept record is not
	// shipped twice; it is dropped once they are gone.
	Shipped map[string]*ShippedRecord `json:"shipped,omitempty"`
}

// ShippedRecord is a saved record whose lines are all in vmware.log.
type ShippedRecord struct {
	Name     string    `json:"name"`
	Files    []string  `json:"files"`
	Lines    int       `json:"lines"`
	Shipped  time.Time `json:"shipped"`
	Disposed bool      `json:"disposed"`      // archived, removed or deliberately kept
	How      string    `json:"how,omitempty"` // the Disposition applied
}

// Boot identifies one boot of the machine.
type Boot struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
}

const maxBoots = 64

// OpenStore opens (creating) the state directory and loads its state.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kmsgdump: state directory: %w", err)
	}
	s := &Store{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("kmsgdump: %w", err)
	default:
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("kmsgdump: %s is corrupt: %w (move it away to start afresh; records would be shipped again)", filepath.Join(dir, "state.json"), err)
		}
	}
	if s.state.Shipped == nil {
		s.state.Shipped = map[string]*ShippedRecord{}
	}
	s.state.Version = 1
	if s.progress, err = openCounter(filepath.Join(dir, "progress")); err != nil {
		return nil, err
	}
	if s.cursor, err = openCounter(filepath.Join(dir, "cursor")); err != nil {
		s.progress.close()
		return nil, err
	}
	return s, nil
}

// Close releases the counter files.
func (s *Store) Close() error {
	return errors.Join(s.progress.close(), s.cursor.close())
}

// Update changes the state in memory under the store's lock; Save writes it.
func (s *Store) Update(f func(*State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.state)
}

// View reads the state under the store's lock.
func (s *Store) View(f func(*State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.state)
}

// Save writes state.json durably: a temporary file is written and
// fsynced, renamed over state.json, and the directory is fsynced.
func (s *Store) Save() error {
	s.mu.Lock()
	b, err := json.MarshalIndent(&s.state, "", "  ")
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return writeFileDurably(filepath.Join(s.Dir, "state.json"), append(b, '\n'), 0o600)
}

// NoteBoot adds the current boot to the history (once); Save writes it.
func (s *Store) NoteBoot(cur Boot) {
	s.Update(func(st *State) {
		for _, b := range st.Boots {
			if b.ID == cur.ID {
				return
			}
		}
		st.Boots = append(st.Boots, cur)
		if len(st.Boots) > maxBoots {
			st.Boots = st.Boots[len(st.Boots)-maxBoots:]
		}
	})
}

// BootAt returns the known boot during which wall-clock time t fell: the
// latest boot that started at or before t.
func (s *Store) BootAt(t time.Time) (Boot, bool) {
	var found Boot
	ok := false
	s.View(func(st *State) {
		for _, b := range st.Boots {
			if !b.Start.After(t) && (!ok || b.Start.After(found.Start)) {
				found, ok = b, true
			}
		}
	})
	return found, ok
}

// Progress returns the saved record being shipped and the number of its
// lines the host has confirmed.
func (s *Store) Progress() (key string, lines uint64) { return s.progress.get() }

// SetProgress records that the host has confirmed lines lines of the
// record key.
func (s *Store) SetProgress(key string, lines uint64) error { return s.progress.set(key, lines) }

// Cursor returns the boot and sequence number of the last kernel log
// record dealt with.
func (s *Store) Cursor() (boot string, seq uint64) { return s.cursor.get() }

// SetCursor records the last kernel log record dealt with.
func (s *Store) SetCursor(boot string, seq uint64) error { return s.cursor.set(boot, seq) }

// counterFile is a (key, number) pair in a fixed-size block with a CRC,
// rewritten in place with one pwrite.
type counterFile struct {
	path string
	f    *os.File
	key  string
	n    uint64
}

const counterSize = 160

func openCounter(path string) (*counterFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: %w", err)
	}
	c := &counterFile{path: path, f: f}
	buf := make([]byte, counterSize)
	n, _ := f.ReadAt(buf, 0)
	c.key, c.n, _ = parseCounter(buf[:n])
	return c, nil
}

// parseCounter decodes "v1 <key> <n> <crc32 hex>\n" padded with spaces.
func parseCounter(b []byte) (string, uint64, bool) {
	line, _, ok := strings.Cut(string(b), "\n")
	if !ok {
		return "", 0, false
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "v1" {
		return "", 0, false
	}
	sum, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(f[0]+" "+f[1]+" "+f[2])) {
		return "", 0, false
	}
	n, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return f[1], n, true
}

func (c *counterFile) get() (string, uint64) { return c.key, c.n }

func (c *counterFile) set(key string, n uint64) error {
	if strings.ContainsAny(key, " \n") || key == "" || len(key) > 100 {
		return fmt.Errorf("kmsgdump: bad counter key %q", key)
	}
	body := "v1 " + key + " " + strconv.FormatUint(n, 10)
	line := fmt.Sprintf("%s %08x\n", body, crc32.ChecksumIEEE([]byte(body)))
	buf := make([]byte, counterSize)
	for i := range buf {
		buf[i] = ' '
	}
	copy(buf, line)
	buf[counterSize-1] = '\n'
	if _, err := c.f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("kmsgdump: %s: %w", c.path, err)
	}
	c.key, c.n = key, n
	return nil
}

func (c *counterFile) close() error { return c.f.Close() }

// writeFileDurably replaces path with data so that after a crash path
// holds either the old or the new content, and the new one once it
// returns.
func writeFileDurably(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("kmsgdump: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("kmsgdump: write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("kmsgdump: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("kmsgdump: fsync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("kmsgdump: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("kmsgdump: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("kmsgdump: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kmsgdump: fsync %s: %w", dir, err)
	}
	return nil
}
