package hgfsd

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// TestErrStatusTable is the host's errno -> status table, as a Linux
// host converts its errno (docs/hgfs-errno.md), and the round trip
// through the client's status -> errno table: an errno a program
// branches on comes back out of the mount as itself.
func TestErrStatusTable(t *testing.T) {
	table := []struct {
		errno syscall.Errno
		want  hgfsproto.Status
		back  syscall.Errno // what the guest sees: hgfs.StatusErrno(want)
	}{
		{syscall.ENOENT, hgfsproto.StatusNoSuchFileOrDir, syscall.ENOENT},
		{syscall.EBADF, hgfsproto.StatusInvalidHandle, syscall.EBADF},
		{syscall.EPERM, hgfsproto.StatusOperationNotPermitted, syscall.EPERM},
		{syscall.EEXIST, hgfsproto.StatusFileExists, syscall.EEXIST},
		{syscall.EISDIR, hgfsproto.StatusFileExists, syscall.EEXIST},
		{syscall.ENOTDIR, hgfsproto.StatusNotDirectory, syscall.ENOTDIR},
		{syscall.ENOTEMPTY, hgfsproto.StatusDirNotEmpty, syscall.ENOTEMPTY},
		{syscall.EPROTO, hgfsproto.StatusProtocolError, syscall.EPROTO},
		{syscall.EACCES, hgfsproto.StatusAccessDenied, syscall.EACCES},
		{syscall.EINVAL, hgfsproto.StatusInvalidName, syscall.ENOENT},
		{syscall.ENOSPC, hgfsproto.StatusNoSpace, syscall.ENOSPC},
		{syscall.EOPNOTSUPP, hgfsproto.StatusOperationNotSupported, syscall.EOPNOTSUPP},
		{syscall.ENAMETOOLONG, hgfsproto.StatusNameTooLong, syscall.ENAMETOOLONG},
		{syscall.EXDEV, hgfsproto.StatusNotSameDevice, syscall.EXDEV},
		{syscall.ENETRESET, hgfsproto.StatusStaleSession, syscall.EIO},
		{syscall.ECONNREFUSED, hgfsproto.StatusTooManySessions, syscall.EAGAIN},
		{syscall.EIO, hgfsproto.StatusGenericError, syscall.EIO},
		{syscall.EMLINK, hgfsproto.StatusGenericError, syscall.EIO},
	}
	for _, c := range table {
		// As os and syscall return them: bare, and inside a *PathError.
		for _, err := range []error{c.errno, &os.PathError{Op: "open", Path: "/x", Err: c.errno}, fmt.Errorf("w: %w", &os.LinkError{Op: "rename", Old: "a", New: "b", Err: c.errno})} {
			if got := errStatus(err); got != c.want {
				t.Errorf("errStatus(%v) = %v, want %v", err, got, c.want)
			}
		}
		if got := hgfs.StatusErrno(c.want); got != c.back {
			t.Errorf("round trip %v -> %v -> %v, want %v", c.errno, c.want, got, c.back)
		}
	}
	for err, want := range map[error]hgfsproto.Status{
		nil:                 sOK,
		fs.ErrNotExist:      hgfsproto.StatusNoSuchFileOrDir,
		fs.ErrExist:         hgfsproto.StatusFileExists,
		fs.ErrPermission:    hgfsproto.StatusAccessDenied,
		fmt.Errorf("other"): hgfsproto.StatusGenericError,
		fmt.Errorf("openat x: path escapes from parent"): hgfsproto.StatusAccessDenied,
	} {
		if got := errStatus(err); got != want {
			t.Errorf("errStatus(%v) = %v, want %v", err, got, want)
		}
	}
}
