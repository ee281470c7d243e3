package kmsgdump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/rpc"
)

// Shipper writes lines into vmware.log with the "log" RPCI, as Photon's
// kernel dumper does, but over one persistent RPCI channel: it is opened
// on first use and reopened after a failure. While the host is
// unreachable, Log retries with a back-off until the line is delivered or
// the context ends, so a line is never dropped here.
//
// Over a resumable channel (the backdoor; see rpc.Resumable) it tells a
// Flight where each line stands, so that a process killed with a line in
// flight can learn after its restart whether the host logged it (Settle).
type Shipper struct {
	// Dial opens an RPCI channel, preferably a resumable one
	// (transport.DialRPCIResumable).
	Dial rpc.Dialer
	// Resume, if set, finds again the channel a Token names
	// (transport.ResumeRPCI); without it, Settle cannot tell.
	Resume func(token string) (rpc.Channel, error)
	// Opened, if set, is told the token of each resumable channel as soon
	// as it is open, so that a later process can close it if this one is
	// killed (Settle); an error closes the channel and stops Log.
	Opened func(token string) error
	// Logger receives host-unreachable and host-back events; nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts while the
	// host is unreachable; zero means 50 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration

	mu sync.Mutex  // held by Log and Close
	ch rpc.Channel // nil until first use or after a failure

	lines   atomic.Int64 // lines delivered
	refused atomic.Int64 // lines the host refused
	down    atomic.Bool  // the last attempt failed on the transport
}

// Flight is told where a line stands, so that a restart can settle the one
// a kill interrupted. Its methods must record durably enough to survive
// the process (a write to the page cache does); an error from them stops
// Log.
type Flight interface {
	// Sending is called before the line goes out on the channel that
	// token names ("" when the channel cannot be resumed).
	Sending(token string) error
	// Arrived is called once the host has the line: over a resumable
	// channel as soon as the send returns, before the reply is collected
	// (the host has acted on the line by then, and its reply waits on
	// the channel until collected); otherwise once the reply is in.
	Arrived() error
	// Unsent is called when Log gives up (its context ended) knowing
	// that the line did not reach the host. When it cannot know (the
	// context ended while a reply was awaited on a channel that cannot
	// be resumed), neither Arrived nor Unsent is called.
	Unsent() error
}

// ErrRefused wraps a host's refusal of a log line ("0 " reply), which no
// retry would change.
var ErrRefused = errors.New("kmsgdump: host refused the log line")

// Log sends "log <text>" and waits until the host has it. text must
// already be a single line of at most MaxLine bytes (see AppendLogLines).
// fl, if not nil, is told where the line stands. Log returns nil once the
// host has the line, an error wrapping ErrRefused if the host answered
// "0 " or garbage, and the context's error if it ended first.
//
// Over a resumable channel a line whose send completed is delivered even
// if collecting the reply then fails: it is not sent again.
func (s *Shipper) Log(ctx context.Context, text []byte, fl Flight) error {
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
	maybe := false // an attempt may have delivered the line unbeknown
	for {
		reply, sent, err := s.attempt(ctx, msg, fl)
		maybe = maybe || sent
		if err == nil {
			if s.down.Swap(false) {
				s.logger().Info("host reachable again; shipping resumed")
			}
			if reply != nil && !bytes.HasPrefix(reply, []byte("1 ")) {
				s.refused.Add(1)
				return fmt.Errorf("%w: %q", ErrRefused, bytes.TrimRight(reply[:min(len(reply), 80)], "\x00"))
			}
			s.lines.Add(1)
			return nil
		}
		var ferr flightError
		if errors.As(err, &ferr) {
			return ferr.err
		}
		if cerr := ctx.Err(); cerr != nil {
			if !maybe && fl != nil {
				if err := fl.Unsent(); err != nil {
					return err
				}
			}
			return cerr
		}
		if !s.down.Swap(true) {
			s.logger().Warn("host unreachable; retrying", "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if !maybe && fl != nil {
				if err := fl.Unsent(); err != nil {
					return err
				}
			}
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// flightError is a Flight's own failure, which ends Log.
type flightError struct{ err error }

func (e flightError) Error() string { return e.err.Error() }

// attempt makes one try on the current channel, opening it if needed. A
// nil error means the host has the line; reply is then its reply, or nil
// when the reply could not be collected over a resumable channel. Any
// other failure drops the channel; sent then says whether the line may
// have reached the host (a failed receive on a channel that cannot be
// resumed).
func (s *Shipper) attempt(ctx context.Context, msg []byte, fl Flight) (reply []byte, sent bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		if s.Dial == nil {
			return nil, false, errors.New("kmsgdump: shipper has no dialer")
		}
		ch, err := s.Dial(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("kmsgdump: open rpci channel: %w", err)
		}
		if tok := Token(ch); tok != "" && s.Opened != nil {
			if err := s.Opened(tok); err != nil {
				ch.Close()
				return nil, false, flightError{err}
			}
		}
		s.ch = ch
	}
	token := Token(s.ch)
	if fl != nil {
		if err := fl.Sending(token); err != nil {
			return nil, false, flightError{err}
		}
	}
	if err := s.ch.Send(ctx, msg); err != nil {
		s.dropLocked()
		return nil, false, fmt.Errorf("kmsgdump: send: %w", err)
	}
	if token != "" && fl != nil {
		if err := fl.Arrived(); err != nil {
			return nil, true, flightError{err}
		}
	}
	reply, err = s.ch.Receive(ctx)
	if err != nil {
		s.dropLocked()
		if token != "" {
			s.logger().Debug("the host has the line but its reply was lost", "err", err)
			return nil, true, nil
		}
		return nil, true, fmt.Errorf("kmsgdump: receive: %w", err)
	}
	if len(reply) < 2 || (reply[0] != '1' && reply[0] != '0') || reply[1] != ' ' {
		s.dropLocked() // the stream may be out of step
		if len(reply) == 0 {
			reply = []byte("(empty)")
		}
	}
	if token == "" && fl != nil {
		if err := fl.Arrived(); err != nil {
			return nil, true, flightError{err}
		}
	}
	return reply, true, nil
}

// Token returns the token of a resumable channel, "" for any other.
func Token(ch rpc.Channel) string {
	if r, ok := ch.(rpc.Resumable); ok {
		return r.Token()
	}
	return ""
}

// Settle finds the channel token names, left by an earlier process, and
// asks whether the last line sent on it reached the host; then it closes
// that channel, which that process can no longer do. known is false when
// it cannot tell: no token or no Resume, or the channel is gone (the VMX
// closed it, the guest was reset, a checkpoint invalidated it).
func (s *Shipper) Settle(ctx context.Context, token string) (arrived, known bool) {
	if token == "" || s.Resume == nil {
		return false, false
	}
	ch, err := s.Resume(token)
	if err != nil {
		s.logger().Debug("cannot resume the earlier channel", "err", err)
		return false, false
	}
	defer ch.Close()
	reply, err := ch.Receive(ctx)
	if err != nil {
		s.logger().Debug("the earlier channel is gone", "err", err)
		return false, false
	}
	return len(reply) > 0, true
}

// Close closes the channel, if open.
func (s *Shipper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		return nil
	}
	err := s.ch.Close()
	s.ch = nil
	return err
}

func (s *Shipper) dropLocked() {
	if s.ch != nil {
		s.ch.Close()
		s.ch = nil
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
