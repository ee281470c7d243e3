package fusefs

import (
	"context"
	"sync"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// Lookup storms. A program that looks up many names of one directory
// without listing it (git status, make, a backup checking the paths it
// knows, stat(1) of a list of files) costs a GETATTR round trip per name,
// one at a time, since the kernel sends one process's lookups one after
// the other. When stormFound lookups in a row of names in one directory
// have asked the host and found them, within the entry timeout, the next
// one has the FS list the directory in the background, with SEARCH_READs
// kept in flight (each entry carries the attributes a GETATTR would
// return), and answers the next lookups from the listing: a name already
// listed at once, a name
// not listed yet when the listing reaches it, and, once the listing is
// complete, a name it lacks with ENOENT for the negative timeout, as for a
// directory listed by readdir. A storm over the whole directory thus
// costs about the round trips the lookups would have cost, pipelined
// instead of one at a time.
//
// What a listing answers is as fresh as a GETATTR answered when its
// entry arrived (hosts read an entry's attributes when they send it):
// each entry answers one lookup, and the kernel keeps it for the timeouts
// less its age. A name this mount creates, removes or renames while a
// listing is under way is never answered from it, nor is a name whose
// inode the kernel holds (its node knows more); the kernel checking such
// a name again does not count towards a storm either.
//
// Bounds, for storms that cover little of a large directory: a listing
// reads at most stormAhead entries plus stormPerLookup per lookup in the
// directory since it began unless a lookup is waiting for it, and gives
// up when no lookup comes for stormIdle; lookups wait for a listing, all
// together, no longer than stormWaitLookups lookups one after the other
// would have taken (measured), then ask the host as before. A lookup the
// listing answers within the time a lookup takes is not counted.
const (
	stormFound       = 3
	stormAhead       = 64
	stormPerLookup   = 64
	stormIdle        = time.Second
	stormWaitLookups = 8192
	// stormWindow is how many SEARCH_READs a storm listing keeps in
	// flight: it leaves the other channels to the requests of other
	// operations, and two already keep the VMX busy (under vmxsim's
	// trap, 2, 4 and 8 list equally fast); each read in flight past the
	// end of the directory is a round trip for nothing.
	stormWindow = 2
)

// storm is the listing a lookup storm set off in one directory.
type storm struct {
	start time.Time
	more  chan struct{} // a lookup came: the listing may read further

	mu       sync.Mutex
	attrs    map[string]stormEntry // listed, not used yet
	names    map[string]bool       // every name the directory holds, as listed and changed since
	changed  map[string]bool       // names changed through this mount since the listing began
	read     int                   // entries listed
	demand   int                   // lookups in the directory since the listing began
	waiting  int                   // lookups waiting for the listing now
	waitLeft time.Duration         // how much longer lookups may wait for it, in all
	ended    bool                  // the listing is over (complete or not)
	done     bool                  // ... and it is complete
	last     time.Time             // when the last entries (or the end) arrived
	wake     chan struct{}         // closed when entries arrive or the listing ends
}

type stormEntry struct {
	attr hgfs.Attr
	at   time.Time
}

// lookupRTT is the time a lookup that asks the host takes, lately (a
// guess before any has).
func (f *FS) lookupRTT() time.Duration {
	if d := f.lookupNS.Load(); d > 0 {
		return time.Duration(d)
	}
	return time.Millisecond
}

// timedLookup records how long a lookup that asked the host took.
func (f *FS) timedLookup(d time.Duration) {
	old := f.lookupNS.Load()
	if old > 0 {
		d = (7*time.Duration(old) + d) / 8
	}
	f.lookupNS.Store(int64(d))
}

// stormTTL is how long what a listing says stays usable: the shorter of
// the entry and attribute timeouts.
func (f *FS) stormTTL() time.Duration { return min(f.entryTimeout, f.attrTimeout) }

// stormDue starts a listing, for a lookup about to ask the host, when the
// lookups before it in this directory found stormFound names in a row
// within the entry timeout (hostFound); it reports whether it did.
func (n *node) stormDue() bool {
	f := n.fsys
	ttl := f.stormTTL()
	if ttl <= 0 {
		return false
	}
	now := time.Now()
	n.mu.Lock()
	if s := n.storm; s != nil && !s.over(now, ttl) {
		n.mu.Unlock()
		return false
	}
	n.storm = nil
	if n.found < stormFound || now.Sub(n.foundAt) > f.entryTimeout {
		n.mu.Unlock()
		return false
	}
	n.found, n.foundAt = 0, time.Time{}
	s := &storm{
		start:    now,
		more:     make(chan struct{}, 1),
		attrs:    map[string]stormEntry{},
		names:    map[string]bool{},
		changed:  map[string]bool{},
		last:     now,
		wake:     make(chan struct{}),
		waitLeft: stormWaitLookups * f.lookupRTT(),
	}
	n.storm = s
	n.mu.Unlock()
	f.bg.Go(func() { n.runStorm(s) })
	return true
}

// hostFound records what a lookup in this directory that asked the host
// learned: a name that exists counts towards a storm; one that does not
// (a program probing for names, or about to create them) ends the run.
func (n *node) hostFound(found bool) {
	now := time.Now()
	n.mu.Lock()
	switch {
	case !found:
		n.found = 0
	case n.found == 0 || now.Sub(n.foundAt) > n.fsys.entryTimeout:
		n.found, n.foundAt = 1, now
	default:
		n.found++
	}
	n.mu.Unlock()
}

// over reports whether nothing the storm learned is usable any more.
func (s *storm) over(now time.Time, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended && now.Sub(s.last) >= ttl
}

// runStorm lists the directory for s.
func (n *node) runStorm(s *storm) {
	f := n.fsys
	ctx, cancel := context.WithTimeout(f.bgCtx, RequestTimeout)
	defer cancel()
	window := stormWindow
	if !f.c.Pipelined() {
		// Over the backdoor a SEARCH_READ beside another costs as much
		// as one after it, and one at a time the listing sends it itself
		// instead of handing each reply over from a worker.
		window = 1
	}
	complete, err := f.c.ListFunc(ctx, n.hpath(), window, func(es []hgfs.DirEntry) bool {
		return n.stormDeliver(ctx, s, es)
	})
	if err != nil {
		f.lg.Debug("hgfs: listing for a lookup storm failed", "path", n.hpath(), "err", err)
	}
	s.mu.Lock()
	s.ended, s.done, s.last = true, complete && err == nil, time.Now()
	names := s.names
	s.names = nil // handed to the node, which keeps it current from now on
	s.broadcastLocked()
	s.mu.Unlock()
	if s.done {
		// The host's names as of the listing's start, with this mount's
		// changes since applied: what a readdir would have given.
		n.setNamesAt(names, s.start)
	}
}

// stormDeliver records listed entries, then holds the listing while it is
// further ahead of the lookups than they pay for.
func (n *node) stormDeliver(ctx context.Context, s *storm, es []hgfs.DirEntry) bool {
	now := time.Now()
	s.mu.Lock()
	for _, e := range es {
		if s.changed[e.Name] {
			continue
		}
		s.names[e.Name] = true
		const need = hgfsproto.AttrValidType | hgfsproto.AttrValidSize
		if e.Attr.Mask&need == need && n.GetChild(e.Name) == nil {
			s.attrs[e.Name] = stormEntry{attr: e.Attr, at: now}
		}
	}
	s.read += len(es)
	s.last = now
	s.broadcastLocked()
	defer s.mu.Unlock()
	for s.waiting == 0 && s.read > stormAhead+stormPerLookup*s.demand {
		s.mu.Unlock()
		t := time.NewTimer(stormIdle)
		select {
		case <-s.more:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		s.mu.Lock()
		if ctx.Err() != nil || s.waiting == 0 && time.Since(s.last) >= stormIdle && s.read > stormAhead+stormPerLookup*s.demand {
			return false
		}
	}
	return true
}

func (s *storm) broadcastLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// fromStorm answers a lookup of name (a host name) from the directory's
// storm listing, waiting for it if the listing is under way and the
// storm's waiting allowance lasts. It returns the attributes and when
// they were listed, or ok false when the host must be asked (or, if the
// listing has completed, the name set it left decides).
func (n *node) fromStorm(ctx context.Context, name string) (e stormEntry, ok bool) {
	ttl := n.fsys.stormTTL()
	n.mu.Lock()
	s := n.storm
	n.mu.Unlock()
	if s == nil {
		return stormEntry{}, false
	}
	rtt := n.fsys.lookupRTT()
	var waited time.Duration
	s.mu.Lock()
	defer s.mu.Unlock()
	s.demand++
	s.poke()
	for {
		if e, ok := s.attrs[name]; ok {
			delete(s.attrs, name)
			// Waiting up to what asking the host takes cost this lookup
			// nothing: only the wait beyond it counts against the
			// allowance. A listing no faster than one lookup at a time
			// (under the ptrace trap every round trip costs the same,
			// pipelined or not) otherwise spent the allowance on lookups
			// it answered in time, and the last few hundred names of a
			// storm over 10,000 were asked for twice, by GETATTR and in
			// the listing.
			s.waitLeft += min(waited, rtt)
			return e, time.Since(e.at) < ttl && n.fsys.learnedFresh(e.at)
		}
		if s.ended || s.changed[name] || s.names[name] || s.waitLeft <= 0 {
			// Over, or listed but not to be answered from the listing,
			// or waiting has cost enough.
			return stormEntry{}, false
		}
		w, left := s.wake, s.waitLeft
		s.waiting++
		s.poke()
		s.mu.Unlock()
		start := time.Now()
		t := time.NewTimer(left)
		select {
		case <-w:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		s.mu.Lock()
		s.waiting--
		waited += time.Since(start)
		s.waitLeft -= time.Since(start)
		if ctx.Err() != nil {
			return stormEntry{}, false
		}
	}
}

// poke tells a held listing that lookups want it to go on.
func (s *storm) poke() {
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// stormChanged records a change of name (a host name) through this mount
// while a storm listing may be running: it is never answered from the
// listing, and the name set the listing leaves says present as given.
func (n *node) stormChanged(name string, present bool) {
	n.mu.Lock()
	s := n.storm
	n.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.changed[name] = true
	delete(s.attrs, name)
	if !s.ended {
		if present {
			s.names[name] = true
		} else {
			delete(s.names, name)
		}
	}
	s.mu.Unlock()
}

// stormForget marks name as changed in a storm listing without claiming
// it is there or not (after a request whose outcome is unknown).
func (n *node) stormForget(name string) {
	n.mu.Lock()
	s := n.storm
	n.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.changed[name] = true
	delete(s.attrs, name)
	s.mu.Unlock()
}
