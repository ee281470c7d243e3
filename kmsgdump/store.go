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
//	progress     the record being shipped and how many of its lines
//	             (header and footer included) the host has, rewritten in
//	             place after every line
//	cursor       the boot and sequence number of the first /dev/kmsg
//	             record not yet dealt with, rewritten in place
//	inflight     the line being sent (a record's key and line number, or
//	             a boot and kmsg sequence number) and the token of the
//	             channel it goes on, written before every counted line
//	channel      the token of the resumable channel last opened, so that
//	             a restart can close it
//	archive/     copies of shipped pstore records (per configuration)
//
// progress, cursor and inflight are single fixed-size blocks with a
// checksum, rewritten with one pwrite: a killed process leaves them exact
// (the page cache survives it); a machine crash may leave older values,
// which repeat lines rather than lose them, and a torn block fails its
// checksum and counts as absent.
//
// inflight names a line that progress (or cursor) does not yet count only
// while it is being sent; finding one after a restart, the dumper asks the
// VMX, through the channel the token names, whether the line arrived (see
// Shipper.Settle and the package documentation).
type Store struct {
	Dir string
	dir *secureDir

	mu       sync.Mutex
	state    State
	progress *counterFile
	cursor   *counterFile
	inflight *counterFile
	channel  *counterFile
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
// The directory must be owned by this process's user (root, for the
// daemon) with mode 0700, and every file in it is opened without
// following symlinks (see secureDir): the daemon writes there as root.
func OpenStore(dir string) (*Store, error) {
	sd, err := openSecureDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: state directory: %w", err)
	}
	s, err := openStore(dir, sd)
	if err != nil {
		sd.close()
	}
	return s, err
}

func openStore(dir string, sd *secureDir) (*Store, error) {
	s := &Store{Dir: dir, dir: sd}
	b, err := sd.readFile("state.json")
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
	if s.progress, err = openCounter(sd, "progress"); err != nil {
		return nil, err
	}
	if s.cursor, err = openCounter(sd, "cursor"); err != nil {
		s.progress.close()
		return nil, err
	}
	if s.inflight, err = openCounter(sd, "inflight"); err != nil {
		s.progress.close()
		s.cursor.close()
		return nil, err
	}
	if s.channel, err = openCounter(sd, "channel"); err != nil {
		s.progress.close()
		s.cursor.close()
		s.inflight.close()
		return nil, err
	}
	return s, nil
}

// Close releases the counter files.
func (s *Store) Close() error {
	return errors.Join(s.progress.close(), s.cursor.close(), s.inflight.close(), s.channel.close(), s.dir.close())
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
	if err := s.dir.writeFile("state.json", append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("kmsgdump: %w", err)
	}
	return nil
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
// lines the host has.
func (s *Store) Progress() (key string, lines uint64) {
	key, lines, _ = s.progress.get()
	return key, lines
}

// SetProgress records that the host has the first lines lines of the
// record key.
func (s *Store) SetProgress(key string, lines uint64) error { return s.progress.set(key, lines, "") }

// Cursor returns the boot and the sequence number of the first kernel log
// record not yet dealt with.
func (s *Store) Cursor() (boot string, seq uint64) {
	boot, seq, _ = s.cursor.get()
	return boot, seq
}

// SetCursor records that every kernel log record of boot below seq has
// been dealt with.
func (s *Store) SetCursor(boot string, seq uint64) error { return s.cursor.set(boot, seq, "") }

// Inflight returns the line last sent, or being sent: what names a saved
// record ("saved:KEY", n its line number) or a boot's kernel log
// ("kmsg:BOOT", n the record's sequence number), and token the channel it
// went on ("" when that channel cannot be resumed).
func (s *Store) Inflight() (what string, n uint64, token string) { return s.inflight.get() }

// SetInflight records the line about to be sent and its channel.
func (s *Store) SetInflight(what string, n uint64, token string) error {
	return s.inflight.set(what, n, token)
}

// Channel returns the token of the resumable channel last opened.
func (s *Store) Channel() string {
	_, _, token := s.channel.get()
	return token
}

// SetChannel records the token of a resumable channel just opened.
func (s *Store) SetChannel(token string) error { return s.channel.set("channel", 0, token) }

// counterFile is a (key, number, token) triple in a fixed-size block with
// a CRC, rewritten in place with one pwrite.
type counterFile struct {
	path  string
	f     *os.File
	key   string
	n     uint64
	token string
}

const counterSize = 200

func openCounter(d *secureDir, name string) (*counterFile, error) {
	f, err := d.open(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: %w", err)
	}
	c := &counterFile{path: f.Name(), f: f}
	buf := make([]byte, counterSize)
	n, _ := f.ReadAt(buf, 0)
	c.key, c.n, c.token, _ = parseCounter(buf[:n])
	return c, nil
}

// parseCounter decodes "v2 <key> <n> <token or -> <crc32 hex>\n" padded
// with spaces.
func parseCounter(b []byte) (key string, n uint64, token string, ok bool) {
	line, _, ok := strings.Cut(string(b), "\n")
	if !ok {
		return "", 0, "", false
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "v2" {
		return "", 0, "", false
	}
	sum, err := strconv.ParseUint(f[4], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(strings.Join(f[:4], " "))) {
		return "", 0, "", false
	}
	n, err = strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return "", 0, "", false
	}
	if f[3] != "-" {
		token = f[3]
	}
	return f[1], n, token, true
}

func (c *counterFile) get() (string, uint64, string) { return c.key, c.n, c.token }

func (c *counterFile) set(key string, n uint64, token string) error {
	if !counterWord(key) || token != "" && !counterWord(token) {
		return fmt.Errorf("kmsgdump: bad counter key %q or token %q", key, token)
	}
	tok := token
	if tok == "" {
		tok = "-"
	}
	body := "v2 " + key + " " + strconv.FormatUint(n, 10) + " " + tok
	line := fmt.Sprintf("%s %08x\n", body, crc32.ChecksumIEEE([]byte(body)))
	if len(line) > counterSize-1 {
		return fmt.Errorf("kmsgdump: counter %q too long", body)
	}
	buf := make([]byte, counterSize)
	for i := range buf {
		buf[i] = ' '
	}
	copy(buf, line)
	buf[counterSize-1] = '\n'
	if _, err := c.f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("kmsgdump: %s: %w", c.path, err)
	}
	c.key, c.n, c.token = key, n, token
	return nil
}

// counterWord reports whether s can be a field of a counter block.
func counterWord(s string) bool {
	return s != "" && s != "-" && len(s) <= 80 && !strings.ContainsAny(s, " \t\n")
}

func (c *counterFile) close() error { return c.f.Close() }
