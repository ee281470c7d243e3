package kmsgdump

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

// Shipper writes lines into vmware.log with the "log" RPCI, as Photon's
// kernel dumper does, but over one persistent RPCI channel: the rpc.Client
// opens it on first use and reopens it after a failure. While the host is
// unreachable, Log retries with a back-off until the line is delivered or
// the context ends, so a line is never dropped here.
type Shipper struct {
	// Client carries the requests. Its own single retry should be off
	// (NoRetry): Log retries itself, with back-off.
	Client *rpc.Client
	// Logger receives host-unreachable and host-back events; nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts while the
	// host is unreachable; zero means 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration

	lines   atomic.Int64 // lines delivered
	refused atomic.Int64 // lines the host refused
	down    atomic.Bool  // the last attempt failed on the transport
}

// ErrRefused wraps a host's refusal of a log line ("0 " reply), which no
// retry would change.
var ErrRefused = errors.New("kmsgdump: host refused the log line")

// Log sends "log <text>" and waits for the host's reply. text must already
// be a single line of at most MaxLine bytes (see AppendLogLines). It
// returns nil once the host has the line, an error wrapping ErrRefused if
// the host answered "0 " or garbage, and the context's error if it ended
// first.
func (s *Shipper) Log(ctx context.Context, text []byte) error {
	msg := make([]byte, 0, 4+len(text))
	msg = append(msg, "log "...)
	msg = append(msg, text...)
	backoff := s.MinBackoff
	if backoff <= 0 {
		backoff = 50 * time.Millisecond
	}
	maxBackoff := s.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	for {
		_, err := s.Client.Call(ctx, msg)
		if err == nil {
			s.lines.Add(1)
			if s.down.Swap(false) {
				s.logger().Info("host reachable again; shipping resumed")
			}
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if !rpc.IsTransportError(err) {
			s.refused.Add(1)
			return errors.Join(ErrRefused, err)
		}
		if !s.down.Swap(true) {
			s.logger().Warn("host unreachable; retrying", "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// Lines returns how many lines the host has accepted.
func (s *Shipper) Lines() int64 { return s.lines.Load() }

// Down reports whether the last attempt found the host unreachable.
func (s *Shipper) Down() bool { return s.down.Load() }

func (s *Shipper) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
