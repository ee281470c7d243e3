// Package kmsg is the pure codec of the kernel's /dev/kmsg record format
// (Documentation/ABI/testing/dev-kmsg):
//
//	<prival>,<seq>,<timestamp µs>,<flag>[,more fields];<message>\n
//	 KEY=value\n           (dictionary lines, each starting with a space)
//
// prival is the syslog priority: facility<<3 | level. flag is '-' for a
// whole record, 'c' for the first fragment of a continued line and '+' for
// a later fragment (kernels before 4.9 emit the last two). The message
// escapes bytes below 0x20, from 0x7f up, and the backslash as \xNN;
// Decode undoes that, so Record.Message holds the bytes the kernel logged.
//
// It also formats records the way the kernel's own dumpers do with the
// syslog flag (kmsg_dump_get_line, and so pstore and Photon's vmware.log
// dumper): "<prival>[sssss.uuuuuu] message". It does no I/O and holds no
// state; reading /dev/kmsg (EPIPE on ring overrun, one record per read) is
// the caller's job.
package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Levels, as in the kernel's KERN_* prefixes.
const (
	LevelEmerg   = 0
	LevelAlert   = 1
	LevelCrit    = 2
	LevelErr     = 3
	LevelWarning = 4
	LevelNotice  = 5
	LevelInfo    = 6
	LevelDebug   = 7
)

// Flags of a record.
const (
	FlagWhole    = '-' // a complete record
	FlagContinue = 'c' // first fragment; '+' fragments follow
	FlagFragment = '+' // continues the previous record
)

// MaxRecord bounds the size of one encoded record: the kernel's
// CONSOLE_EXT_LOG_MAX is 8192, and a read buffer of this size never gets
// EINVAL for being too small.
const MaxRecord = 16 << 10

// Errors.
var (
	ErrEmpty     = errors.New("kmsg: empty record")
	ErrMalformed = errors.New("kmsg: malformed record")
	ErrLevel     = errors.New("kmsg: unknown level")
)

// Record is one decoded /dev/kmsg record.
type Record struct {
	Facility int           // syslog facility: 0 kernel, 1 user (writes to /dev/kmsg), ...
	Level    int           // 0 emerg .. 7 debug
	Seq      uint64        // sequence number; a gap means records were lost
	Time     time.Duration // since boot (monotonic clock), µs resolution
	Flag     byte          // FlagWhole, FlagContinue or FlagFragment
	Message  []byte        // unescaped text, without the trailing newline
	Dict     []KV          // dictionary lines, in order
}

// KV is one dictionary line (" SUBSYSTEM=pci").
type KV struct {
	Key, Value string
}

// Prival returns the syslog priority value, facility<<3 | level.
func (r Record) Prival() int { return r.Facility<<3 | r.Level }

// Decode parses one record as read from /dev/kmsg: a header line and any
// dictionary lines. A trailing newline is optional. Unknown extra header
// fields (kernels may add them after the flag) are ignored.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) == 0 {
		return r, ErrEmpty
	}
	semi := bytes.IndexByte(b, ';')
	if semi < 0 {
		return r, fmt.Errorf("%w: no ';' after the header", ErrMalformed)
	}
	header := b[:semi]
	if bytes.IndexByte(header, '\n') >= 0 {
		return r, fmt.Errorf("%w: newline in the header", ErrMalformed)
	}
	fields := bytes.Split(header, []byte{','})
	if len(fields) < 4 {
		return r, fmt.Errorf("%w: %d header fields, want at least 4", ErrMalformed, len(fields))
	}
	pri, err := strconv.ParseUint(string(fields[0]), 10, 31)
	if err != nil {
		return r, fmt.Errorf("%w: priority %q", ErrMalformed, fields[0])
	}
	seq, err := strconv.ParseUint(string(fields[1]), 10, 64)
	if err != nil {
		return r, fmt.Errorf("%w: sequence %q", ErrMalformed, fields[1])
	}
	us, err := strconv.ParseUint(string(fields[2]), 10, 63)
	if err != nil || us > uint64(1<<63-1)/uint64(time.Microsecond) {
		return r, fmt.Errorf("%w: timestamp %q", ErrMalformed, fields[2])
	}
	if len(fields[3]) != 1 || (fields[3][0] != FlagWhole && fields[3][0] != FlagContinue && fields[3][0] != FlagFragment) {
		return r, fmt.Errorf("%w: flag %q", ErrMalformed, fields[3])
	}
	r.Facility = int(pri >> 3)
	r.Level = int(pri & 7)
	r.Seq = seq
	r.Time = time.Duration(us) * time.Microsecond
	r.Flag = fields[3][0]

	rest := b[semi+1:]
	msg, dict, _ := bytes.Cut(rest, []byte{'\n'})
	r.Message = Unescape(msg)
	for len(dict) > 0 {
		var line []byte
		line, dict, _ = bytes.Cut(dict, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if line[0] != ' ' {
			return r, fmt.Errorf("%w: dictionary line %q does not start with a space", ErrMalformed, truncate(line))
		}
		k, v, ok := bytes.Cut(line[1:], []byte{'='})
		if !ok || len(k) == 0 {
			return r, fmt.Errorf("%w: dictionary line %q", ErrMalformed, truncate(line))
		}
		r.Dict = append(r.Dict, KV{Key: string(k), Value: string(Unescape(v))})
	}
	return r, nil
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// Unescape decodes the kernel's \xNN escapes. A backslash not followed by
// x and two hex digits is kept as it is.
func Unescape(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return bytes.Clone(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			if hi, ok1 := unhex(b[i+2]); ok1 {
				if lo, ok2 := unhex(b[i+3]); ok2 {
					out = append(out, hi<<4|lo)
					i += 3
					continue
				}
			}
		}
		out = append(out, b[i])
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Escape is the inverse of Unescape, as the kernel escapes a message.
func Escape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < ' ' || c >= 0x7f || c == '\\' {
			out = fmt.Appendf(out, "\\x%02x", c)
			continue
		}
		out = append(out, c)
	}
	return out
}

// Encode formats r as /dev/kmsg presents it (header, escaped message,
// dictionary lines), with the trailing newline. Encode(Decode(b)) is b for
// every record the kernel produces.
func Encode(r Record) []byte {
	flag := r.Flag
	if flag == 0 {
		flag = FlagWhole
	}
	out := fmt.Appendf(nil, "%d,%d,%d,%c;", r.Prival(), r.Seq, r.Time/time.Microsecond, flag)
	out = append(out, Escape(r.Message)...)
	out = append(out, '\n')
	for _, kv := range r.Dict {
		out = append(out, ' ')
		out = append(out, kv.Key...)
		out = append(out, '=')
		out = append(out, Escape([]byte(kv.Value))...)
		out = append(out, '\n')
	}
	return out
}

// AppendPrefix appends "<prival>[sssss.uuuuuu] ", the prefix the kernel's
// dumpers put before each line with the syslog flag and printk.time on.
func AppendPrefix(dst []byte, r Record) []byte {
	us := int64(r.Time / time.Microsecond)
	return fmt.Appendf(dst, "<%d>[%5d.%06d] ", r.Prival(), us/1e6, us%1e6)
}

// levelNames maps names to levels; both the kernel's (KERN_ERR: "err")
// and the common spellings are accepted.
func levelByName(s string) (int, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "emerg", "emergency", "0":
		return LevelEmerg, true
	case "alert", "1":
		return LevelAlert, true
	case "crit", "critical", "2":
		return LevelCrit, true
	case "err", "error", "3":
		return LevelErr, true
	case "warning", "warn", "4":
		return LevelWarning, true
	case "notice", "5":
		return LevelNotice, true
	case "info", "6":
		return LevelInfo, true
	case "debug", "7":
		return LevelDebug, true
	}
	return 0, false
}

// ParseLevel parses a level name (emerg, alert, crit, err, warning, notice,
// info, debug, and the spellings error, warn, emergency, critical) or
// number 0-7.
func ParseLevel(s string) (int, error) {
	l, ok := levelByName(s)
	if !ok {
		return 0, fmt.Errorf("%w %q (want emerg, alert, crit, err, warning, notice, info, debug or 0-7)", ErrLevel, s)
	}
	return l, nil
}

// LevelName returns the kernel's name for a level.
func LevelName(l int) string {
	names := [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}
	if l < 0 || l >= len(names) {
		return strconv.Itoa(l)
	}
	return names[l]
}
