//go:build !linux

package guestinfo

import (
	"context"
	"errors"
	"runtime"
)

var errUnimplemented = errors.New("guestinfo: netlink is not available on " + runtime.GOOS)

// Netlink is the kernel's NetSource; it exists only on Linux.
type Netlink struct{}

// NewNetlink returns a source that always fails off Linux.
func NewNetlink() *Netlink { return &Netlink{} }

// Snapshot fails off Linux.
func (n *Netlink) Snapshot() (*NetSnapshot, error) { return nil, errUnimplemented }

// Watch fails off Linux.
func (n *Netlink) Watch(ctx context.Context, changed func()) error { return errUnimplemented }

// Close does nothing.
func (n *Netlink) Close() error { return nil }
