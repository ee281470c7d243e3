//go:build !linux

package guestinfo

import "context"

// HostWatch notices host name, os-release and DNS changes; it exists only
// on Linux.
type HostWatch struct {
	Sys *System
}

// Watch fails off Linux (the reporter then polls).
func (w *HostWatch) Watch(ctx context.Context, changed func()) error { return errUnimplemented }
