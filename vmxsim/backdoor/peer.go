package backdoor

import (
	"context"
	"errors"

	"github.com/govmtools/govmtools/vmxsim/vmx"
)

// bdTCLO is a TCLOPeer over a backdoor TCLO channel. Exchange hands the
// command to the guest's next receive and takes its next send as the
// reply: the guest polls by sending its previous reply (possibly empty),
// then receiving.
type bdTCLO struct {
	b  *Server
	ch *bdChannel

	// Guarded by b.mu.
	cmd       []byte // handed over by Exchange, not yet given to the guest
	hasCmd    bool
	delivered bool // the guest has the command; its next send is the reply
	closed    bool
	failure   error

	replies chan []byte // buffered 1
	done    chan struct{}
}

var _ vmx.TCLOPeer = (*bdTCLO)(nil)

func (p *bdTCLO) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	p.b.mu.Lock()
	if p.closed {
		p.b.mu.Unlock()
		return nil, errors.New("backdoor channel closed")
	}
	p.cmd, p.hasCmd, p.delivered, p.failure = cmd, true, false, nil
	select { // drop a stale reply
	case <-p.replies:
	default:
	}
	p.b.mu.Unlock()
	select {
	case r := <-p.replies:
		return r, nil
	case <-p.done:
		p.b.mu.Lock()
		err := p.failure
		p.b.mu.Unlock()
		if err == nil {
			err = errors.New("backdoor channel closed")
		}
		return nil, err
	case <-ctx.Done():
		p.b.mu.Lock()
		p.hasCmd, p.cmd = false, nil
		p.b.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (p *bdTCLO) Done() <-chan struct{} { return p.done }

// Close closes the backdoor channel: the guest's next call on it fails, and
// it reopens, as after a VMX-side channel reset.
func (p *bdTCLO) Close() error {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	if !p.ch.closed {
		p.b.closeLocked(p.ch)
	}
	return nil
}

// deliverLocked moves a waiting command to the channel's outbox.
// Preconditions: b.mu is held.
func (p *bdTCLO) deliverLocked(ch *bdChannel) {
	if !p.hasCmd {
		return
	}
	ch.out, ch.hasOut, ch.outPos, ch.outSent = p.cmd, true, 0, false
	p.cmd, p.hasCmd = nil, false
}

// replyLocked takes a guest send. Preconditions: b.mu is held.
func (p *bdTCLO) replyLocked(msg []byte) {
	if !p.delivered {
		return // a poll, or a reply to a command the VMX gave up on
	}
	p.delivered = false
	select {
	case p.replies <- msg:
	default:
	}
}

// fail ends the session with err. Preconditions: b.mu is held.
func (p *bdTCLO) fail(err error) {
	p.failure = err
	p.b.closeLocked(p.ch)
}

// closeLocked marks the peer closed. Preconditions: b.mu is held.
func (p *bdTCLO) closeLocked() {
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}
