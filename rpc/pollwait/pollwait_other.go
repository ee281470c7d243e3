//go:build !linux

package pollwait

import (
	"context"
	"time"
)

// Waiter sleeps between polls; off Linux it uses Go timers.
type Waiter struct{}

// New returns a Waiter.
func New() (*Waiter, error) { return &Waiter{}, nil }

// Sleep returns after d, or with ctx's error once ctx ends.
func (w *Waiter) Sleep(ctx context.Context, d time.Duration) error {
	return Timer(ctx, d)
}

// Close releases nothing.
func (w *Waiter) Close() error { return nil }
