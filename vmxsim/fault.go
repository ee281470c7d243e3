package vmxsim

import (
	"context"
	"net/http"
	"strconv"
	"sync"
)

// faults is the simulator's fault injection for RPCI: requests of chosen
// commands can be held before the VMX handles them, then released to be
// handled normally, or dropped unhandled. A held request models a guest
// message still in flight; dropping it models a guest killed before the
// message was complete, which the VMX never acts on.
type faults struct {
	mu   sync.Mutex
	hold map[string]int // command names being held: requests to let pass first
	held int            // requests waiting now
	cur  *release       // the release the waiting requests wait for
}

// release is closed to let held requests go; drop is set before.
type release struct {
	ch   chan struct{}
	drop bool
}

// HoldRPCI makes requests of the RPCI command name wait, unhandled, until
// ReleaseRPCI, once after more requests of it have passed.
func (c *Core) HoldRPCI(name string, after int) {
	f := &c.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hold == nil {
		f.hold = map[string]int{}
	}
	if f.cur == nil {
		f.cur = &release{ch: make(chan struct{})}
	}
	f.hold[name] = max(after, 0)
}

// ReleaseRPCI stops holding and releases every waiting request: handled
// as usual, or, with drop, answered "0 Dropped" without being handled.
func (c *Core) ReleaseRPCI(drop bool) {
	f := &c.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = nil
	if f.cur != nil {
		f.cur.drop = drop
		close(f.cur.ch)
		f.cur = nil
	}
}

// HeldRPCI returns how many requests are waiting.
func (c *Core) HeldRPCI() int {
	f := &c.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// wait holds a request of command name while it is held; it reports
// whether the request is to be dropped.
func (f *faults) wait(ctx context.Context, name string) (drop bool) {
	f.mu.Lock()
	pass, held := f.hold[name]
	if !held || pass > 0 {
		if held {
			f.hold[name] = pass - 1
		}
		f.mu.Unlock()
		return false
	}
	r := f.cur
	f.held++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.held--
		f.mu.Unlock()
	}()
	select {
	case <-r.ch:
		return r.drop
	case <-ctx.Done():
		return true
	}
}

// registerFaultCtl adds the fault routes to the control API:
//
//	POST /fault/hold?rpci=NAME[&after=N]
//	                                hold requests of an RPCI command (after
//	                                letting N more pass)
//	POST /fault/release[?drop=1]    release (or drop) the held requests
//	GET  /fault                     {"held": N}
func (s *Server) registerFaultCtl() {
	s.HandleCtl("POST /fault/hold", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("rpci")
		if name == "" {
			http.Error(w, "hold needs ?rpci=NAME", http.StatusBadRequest)
			return
		}
		after := 0
		if a := r.URL.Query().Get("after"); a != "" {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				http.Error(w, "after wants a count", http.StatusBadRequest)
				return
			}
			after = n
		}
		s.Core.HoldRPCI(name, after)
	})
	s.HandleCtl("POST /fault/release", func(w http.ResponseWriter, r *http.Request) {
		drop, _ := strconv.ParseBool(r.URL.Query().Get("drop"))
		n := s.Core.HeldRPCI()
		s.Core.ReleaseRPCI(drop)
		if drop {
			s.Core.log.Host("Fault injection: dropped %d held RPCI requests", n)
		}
	})
	s.HandleCtl("GET /fault", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int{"held": s.Core.HeldRPCI()})
	})
}
