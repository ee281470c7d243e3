package kmsgdump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/kmsgdump/kmsg"
)

// Source reads kernel log records from /dev/kmsg, or from a stand-in: a
// FIFO or a regular file holding records in the same format (tests, and
// replaying a saved log).
//
//   - The character device gives one record per read; a read that finds
//     its record overwritten by a ring overrun fails with EPIPE and the
//     next read continues at the oldest record left. The gap shows in the
//     sequence numbers, which the filter reports as lost records.
//   - A FIFO is opened read-write, so it never reports end of file and
//     writers may come and go; records are parsed from the stream.
//   - A regular file is read to its end and then polled for growth.
type Source struct {
	Path string
	// Poll is the regular-file polling interval; 0 means 50 ms.
	Poll   time.Duration
	Logger *slog.Logger

	f      io.ReadCloser // *os.File but in tests
	device bool
	poll   bool
	buf    []byte
	stream []byte // unparsed bytes of a FIFO or file
}

// OpenSource opens path. With atEnd, reading starts at the end of the log
// (only records written from now on; a FIFO has no end to skip to);
// otherwise at the oldest record still held, and the caller skips the
// records it has dealt with before.
func OpenSource(path string, atEnd bool, logger *slog.Logger) (*Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: kernel log: %w", err)
	}
	s := &Source{Path: path, Logger: logger, buf: make([]byte, kmsg.MaxRecord)}
	mode := st.Mode()
	flag := os.O_RDONLY
	switch {
	case mode&os.ModeCharDevice != 0:
		s.device = true
	case mode&os.ModeNamedPipe != 0:
		flag = os.O_RDWR // never EOF, and open does not wait for a writer
	case mode.IsRegular():
		s.poll = true
	default:
		return nil, fmt.Errorf("kmsgdump: kernel log %s is neither a character device, a FIFO nor a file", path)
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("kmsgdump: kernel log: %w", err)
	}
	s.f = f
	if atEnd && (s.device || s.poll) {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("kmsgdump: kernel log: seek to the end: %w", err)
		}
	}
	return s, nil
}

// Close closes the source; a Read blocked on a device or FIFO returns.
func (s *Source) Close() error { return s.f.Close() }

// Read returns the next record, waiting for one. Malformed records are
// logged and skipped. It returns an error when ctx ends or the source
// fails.
func (s *Source) Read(ctx context.Context) (kmsg.Record, error) {
	for {
		if ctx.Err() != nil {
			return kmsg.Record{}, ctx.Err()
		}
		if !s.device {
			// Data already read ended at a line end: what it holds is
			// complete (writers write whole records).
			drained := len(s.stream) > 0 && s.stream[len(s.stream)-1] == '\n'
			if rec, ok := s.nextBuffered(drained); ok {
				return rec, nil
			}
		}
		n, err := s.f.Read(s.buf)
		switch {
		case err == nil && n > 0 && s.device:
			rec, derr := kmsg.Decode(s.buf[:n])
			if derr != nil {
				s.logger().Warn("skipping a malformed kernel log record", "err", derr)
				continue
			}
			return rec, nil
		case err == nil && n > 0:
			s.stream = append(s.stream, s.buf[:n]...)
		case errors.Is(err, syscall.EPIPE):
			// Overrun: our next record was overwritten. The next read
			// returns the oldest one left; the sequence gap is counted.
			continue
		case errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN):
			continue
		case err == io.EOF || (err == nil && n == 0):
			if !s.poll {
				return kmsg.Record{}, io.EOF
			}
			if rec, ok := s.nextBuffered(true); ok {
				return rec, nil
			}
			interval := s.Poll
			if interval <= 0 {
				interval = 50 * time.Millisecond
			}
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		default:
			if ctx.Err() != nil {
				return kmsg.Record{}, ctx.Err()
			}
			return kmsg.Record{}, fmt.Errorf("kmsgdump: read %s: %w", s.Path, err)
		}
	}
}

// nextBuffered parses the next record of a stream. A record is its header
// line and the dictionary lines after it; it is complete once the next
// record's header arrives or, when drained is true (the data read so far
// ends at a line end), at the end of the buffered data.
func (s *Source) nextBuffered(drained bool) (kmsg.Record, bool) {
	for {
		end := bytes.IndexByte(s.stream, '\n')
		if end < 0 {
			if len(s.stream) > kmsg.MaxRecord {
				s.logger().Warn("skipping an overlong kernel log line", "bytes", len(s.stream))
				s.stream = s.stream[:0]
			}
			return kmsg.Record{}, false
		}
		// Find the end of this record's dictionary lines.
		i := end + 1
		for i < len(s.stream) && s.stream[i] == ' ' {
			j := bytes.IndexByte(s.stream[i:], '\n')
			if j < 0 {
				return kmsg.Record{}, false // a dictionary line still coming
			}
			i += j + 1
		}
		if i == len(s.stream) && !drained {
			return kmsg.Record{}, false // dictionary lines may follow
		}
		raw := s.stream[:i]
		rec, err := kmsg.Decode(raw)
		s.stream = s.stream[i:]
		if len(s.stream) == 0 {
			s.stream = nil
		}
		if err != nil {
			s.logger().Warn("skipping a malformed kernel log record", "err", err)
			continue
		}
		return rec, true
	}
}

func (s *Source) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
