package hgfs

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// ErrMalformed is wrapped by errors for replies that do not decode.
var ErrMalformed = hgfsproto.ErrMalformed

// OpError is a failed HGFS operation.
type OpError struct {
	Op   hgfsproto.Op
	Path string
	Err  error // a hgfsproto.Status, or a transport or decoding error
}

func (e *OpError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("hgfs: %v %q: %v", e.Op, e.Path, e.Err)
	}
	return fmt.Sprintf("hgfs: %v: %v", e.Op, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// StatusOf returns the host status carried by err, if any.
func StatusOf(err error) (hgfsproto.Status, bool) {
	var s hgfsproto.Status
	if errors.As(err, &s) {
		return s, true
	}
	return 0, false
}

// StatusErrno maps a host status to an errno (docs/architecture.md
// section 7): INVALID_NAME stays ENOENT as lookups
// expect, NOT_SAME_DEVICE becomes EXDEV so mv falls back to copying,
// INVALID_PARAMETER EINVAL; unknown values are EIO.
func StatusErrno(s hgfsproto.Status) syscall.Errno {
	switch s {
	case hgfsproto.StatusSuccess:
		return 0
	case hgfsproto.StatusNoSuchFileOrDir, hgfsproto.StatusInvalidName:
		return syscall.ENOENT
	case hgfsproto.StatusInvalidHandle:
		return syscall.EBADF
	case hgfsproto.StatusOperationNotPermitted:
		return syscall.EPERM
	case hgfsproto.StatusFileExists:
		return syscall.EEXIST
	case hgfsproto.StatusNotDirectory:
		return syscall.ENOTDIR
	case hgfsproto.StatusDirNotEmpty:
		return syscall.ENOTEMPTY
	case hgfsproto.StatusProtocolError:
		return syscall.EPROTO
	case hgfsproto.StatusAccessDenied, hgfsproto.StatusSharingViolation:
		return syscall.EACCES
	case hgfsproto.StatusNoSpace:
		return syscall.ENOSPC
	case hgfsproto.StatusOperationNotSupported:
		return syscall.EOPNOTSUPP
	case hgfsproto.StatusNameTooLong:
		return syscall.ENAMETOOLONG
	case hgfsproto.StatusInvalidParameter:
		return syscall.EINVAL
	case hgfsproto.StatusNotSameDevice:
		return syscall.EXDEV
	case hgfsproto.StatusTooManySessions:
		return syscall.EAGAIN
	}
	return syscall.EIO
}

// TransportError is a request that got no reply: the channel to the VMX
// failed (ECONNREFUSED while it restarts, a reset, shared folders
// disabled). Whether the host carried the request out is unknown.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return "transport: " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Uncertain reports whether err leaves unknown whether the host carried
// the request out: no reply (TransportError), or a reply that did not
// decode (ErrMalformed). Caches must then forget what the request could
// have changed.
func Uncertain(err error) bool {
	var te *TransportError
	return errors.As(err, &te) || errors.Is(err, ErrMalformed)
}

// Errno maps any error of this package to an errno for the kernel: host
// statuses by StatusErrno, interrupted calls EINTR, everything else
// (malformed replies, transport failures, shared folders disabled) EIO.
// The errno of a failed transport (ECONNREFUSED, say) never reaches
// applications: it is not one a file system returns.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if s, ok := StatusOf(err); ok {
		return StatusErrno(s)
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return syscall.EIO
}
