package kmsgdump

import (
	"context"
	"fmt"
	"sync"
)

// Queue holds live lines between the kernel log reader and the shipping
// goroutine, bounded by a number of lines and of bytes. When it is full
// (the host has been unreachable for a while) new items are dropped and
// counted; the count is shipped, in place of the dropped lines, as a note.
// It also carries the reader's "decided" mark, so that the shipper can
// move the saved cursor past records that were passed over while nothing
// was waiting to be shipped.
type Queue struct {
	MaxLines int
	MaxBytes int

	mu      sync.Mutex
	items   []queued
	lines   int
	bytes   int
	dropped int    // lines dropped since the last queued item
	decided uint64 // every record below this is decided
	wake    chan struct{}
	total   int // lines dropped in all
}

type queued struct {
	Item
	droppedAfter int // lines dropped right after this item
}

// NewQueue returns a queue bounded by maxLines lines and maxBytes bytes.
func NewQueue(maxLines, maxBytes int) *Queue {
	return &Queue{MaxLines: maxLines, MaxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// Push adds an item, or drops it if it does not fit, and reports which.
func (q *Queue) Push(it Item) (ok bool) {
	n, size := len(it.Lines), 0
	for _, l := range it.Lines {
		size += len(l)
	}
	q.mu.Lock()
	if len(q.items) > 0 && (q.lines+n > q.MaxLines || q.bytes+size > q.MaxBytes) {
		q.items[len(q.items)-1].droppedAfter += n
		q.total += n
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, queued{Item: it})
	q.lines += n
	q.bytes += size
	q.mu.Unlock()
	q.poke()
	return true
}

// SetDecided records that every record below seq has been decided.
func (q *Queue) SetDecided(seq uint64) {
	q.mu.Lock()
	changed := seq > q.decided
	if changed {
		q.decided = seq
	}
	q.mu.Unlock()
	if changed {
		q.poke()
	}
}

// Dropped returns how many lines a full queue has dropped in all.
func (q *Queue) Dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Pop waits for the next item. When the queue is empty it returns, with
// ok false, the decided mark, so the caller can save it; it then waits
// for a change. The note about lines dropped after an item comes back as
// the item after it.
func (q *Queue) Pop(ctx context.Context, lastDecided uint64) (it Item, decided uint64, ok bool, err error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			head := q.items[0]
			q.items = q.items[1:]
			q.lines -= len(head.Lines)
			for _, l := range head.Lines {
				q.bytes -= len(l)
			}
			if head.droppedAfter > 0 {
				// The note takes the dropped lines' place at the front.
				n := note(fmt.Sprintf("kmsgdump: %d lines dropped: the host was unreachable and the queue (%d lines) was full", head.droppedAfter, q.MaxLines))
				q.items = append([]queued{{Item: n}}, q.items...)
				q.lines += len(n.Lines)
			}
			q.mu.Unlock()
			return head.Item, 0, true, nil
		}
		d := q.decided
		q.mu.Unlock()
		if d > lastDecided {
			return Item{}, d, false, nil
		}
		select {
		case <-ctx.Done():
			return Item{}, 0, false, ctx.Err()
		case <-q.wake:
		}
	}
}
