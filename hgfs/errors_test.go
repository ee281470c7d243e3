package hgfs

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// TestErrnoOnlyPOSIX: transport failures reach applications as EIO,
// never as the socket's errno.
func TestErrnoOnlyPOSIX(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}
	for err, want := range map[error]syscall.Errno{
		&OpError{Op: hgfsproto.OpWriteV3, Err: &TransportError{Err: refused}}:             syscall.EIO,
		&OpError{Op: hgfsproto.OpWriteV3, Err: fmt.Errorf("x: %w", syscall.ECONNRESET)}:   syscall.EIO,
		&OpError{Op: hgfsproto.OpCreateDirV3, Err: fmt.Errorf("%w: short", ErrMalformed)}: syscall.EIO,
		&OpError{Op: hgfsproto.OpCreateDirV3, Err: hgfsproto.StatusFileExists}:            syscall.EEXIST,
		&OpError{Op: hgfsproto.OpGetattrV3, Err: context.Canceled}:                        syscall.EINTR,
	} {
		if got := Errno(err); got != want {
			t.Errorf("Errno(%v) = %v, want %v", err, got, want)
		}
	}
	if !Uncertain(&OpError{Err: &TransportError{Err: refused}}) || !Uncertain(fmt.Errorf("%w", ErrMalformed)) || Uncertain(hgfsproto.StatusFileExists) {
		t.Error("Uncertain")
	}
}
