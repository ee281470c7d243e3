package fusefs

import (
	"context"
	"strings"
	"time"
)

// Names the host did not find. A host answers every name under a share
// that is disabled (or gone for a while) with the status of a name that
// does not exist, NO_SUCH_FILE_OR_DIR, exactly as open-vm-tools' server
// does (HgfsServerPolicy_GetSharePath: no such share), so the status of
// a lookup cannot tell the two apart. Kept as a negative entry, such an
// answer would hide the name for the negative timeout after the share
// came back; and once the kernel has forgotten the name's inode, which it
// does right after a lookup fails, nothing in the lookup says the name
// was there.
//
// So a "not found" becomes a negative entry only after the share has
// been seen present after it: the host's first "not found" for a name
// goes to the kernel uncached, and is remembered (missed); a lookup of
// a name not found lately that the host again does not find asks for the
// share's root, and only if it is there is the answer kept as a negative
// entry. A name looked up once (a create) thus costs the one round trip
// it always did, and a name looked up again and again one more per
// negative timeout. A share found missing makes the mount forget every
// name set, listing and storm entry learned before (forgetLearned): what
// the share holds when it comes back is not known.

// missedMax bounds the names a directory remembers as not found.
const missedMax = 1024

// missedFor is how long a name the host did not find counts as looked up
// lately: two negative timeouts, so a name looked up over and over stays
// "looked up again" from one negative entry to the next.
func (f *FS) missedFor() time.Duration { return 2 * f.negTimeout }

// recentlyMissed reports whether the host did not find name in the
// directory lately.
func (n *node) recentlyMissed(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.missed[name]
	return ok && time.Since(at) < n.fsys.missedFor()
}

// miss records that the host did not find name now.
func (n *node) miss(name string) {
	now := time.Now()
	keep := n.fsys.missedFor()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.missed == nil {
		n.missed = map[string]time.Time{}
	}
	if len(n.missed) >= missedMax {
		for k, at := range n.missed {
			if now.Sub(at) >= keep {
				delete(n.missed, k)
			}
		}
		if len(n.missed) >= missedMax {
			clear(n.missed)
		}
	}
	n.missed[name] = now
}

// shareOf is the share a path (of this mount's client) lies in: its
// first component.
func shareOf(p string) string {
	share, _, _ := strings.Cut(p, "/")
	return share
}

// sharePresent asks the host whether the share holding path p is there
// now. A share that is missing (disabled on the host, or any failure)
// makes the FS forget what it learned before, and is logged once until
// the share is seen again.
func (f *FS) sharePresent(ctx context.Context, p string) bool {
	share := shareOf(p)
	if share == "" {
		return true // the virtual root of every share is always there
	}
	_, _, err := f.c.Getattr(ctx, share)
	if err == nil {
		f.shareGone.Store(false)
		return true
	}
	f.forgetLearned()
	if !f.shareGone.Swap(true) {
		f.lg.Info("hgfs: the share is not available (disabled on the host?); names it does not find are not cached until it is back", "share", share, "err", err)
	}
	return false
}

// forgetLearned drops every name set, listing and storm entry the FS
// learned before now (see learnedFresh).
func (f *FS) forgetLearned() { f.forgetBefore.Store(time.Now().UnixNano()) }

// learnedFresh reports whether what the FS learned at t is still to be
// trusted: after it, no outage made the FS forget.
func (f *FS) learnedFresh(t time.Time) bool {
	if f.c == nil {
		// No host (a unit test of the name logic): no sessions either.
	} else if gen := f.c.Generation(); f.seenGen.Load() != gen {
		// A new session: the host's HGFS server restarted (or the VMX
		// did), and its shares may have changed with it.
		f.seenGen.Store(gen)
		f.forgetLearned()
	}
	return t.UnixNano() > f.forgetBefore.Load()
}
