package fusefs

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// TestStormWaitWithinLookupTime: a listing that delivers each name a
// little sooner than a lookup of the host would answer it, the lookups
// one name behind it, answers every lookup however small the waiting
// allowance (they lose nothing by waiting); a listing slower than that
// spends the allowance on the excess, and the lookups then ask the host.
func TestStormWaitWithinLookupTime(t *testing.T) {
	const rtt = time.Millisecond
	for _, tt := range []struct {
		name     string
		every    time.Duration // between two entries of the listing
		answered int           // of 20 lookups
	}{
		{"as fast as lookups", rtt * 9 / 10, 20},
		{"twice as slow", 2 * rtt, 1}, // 3 ms of allowance, 1 ms over each: not all
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &FS{attrTimeout: time.Minute, entryTimeout: time.Minute, negTimeout: time.Minute}
				f.lookupNS.Store(int64(rtt))
				n := &node{fsys: f}
				s := &storm{
					start: time.Now(), more: make(chan struct{}, 1),
					attrs: map[string]stormEntry{}, names: map[string]bool{}, changed: map[string]bool{},
					last: time.Now(), wake: make(chan struct{}), waitLeft: 3 * rtt,
				}
				n.storm = s
				const lookups = 20
				name := func(i int) string { return string(rune('a' + i)) }
				delivered := make(chan struct{})
				go func() {
					defer close(delivered)
					for i := range lookups {
						time.Sleep(tt.every)
						s.mu.Lock()
						s.attrs[name(i)] = stormEntry{attr: hgfs.Attr{Mask: hgfsproto.AttrValidType | hgfsproto.AttrValidSize}, at: time.Now()}
						s.names[name(i)] = true
						s.read++
						s.broadcastLocked()
						s.mu.Unlock()
					}
				}()
				answered := 0
				for i := range lookups {
					if _, ok := n.fromStorm(t.Context(), name(i)); ok {
						answered++
					} else {
						time.Sleep(rtt) // asked the host instead
					}
				}
				<-delivered
				if answered < tt.answered || tt.answered < lookups && answered == lookups {
					t.Errorf("%d of %d lookups answered from the listing, want %d", answered, lookups, tt.answered)
				}
			})
		})
	}
}
