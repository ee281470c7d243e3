package vmbackup

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The ioctl numbers: _IOWR('X', 119, int) and _IOWR('X', 120, int), the
// same on amd64 and arm64 (x/sys/unix does not define them).
const (
	FIFREEZE = 0xC0045877
	FITHAW   = 0xC0045878
)

// LinuxFreezer is the real Freezer.
type LinuxFreezer struct{}

// Freeze opens path (O_DIRECTORY, O_NONBLOCK so a FIFO or device never
// blocks the open) and issues FIFREEZE.
func (LinuxFreezer) Freeze(path string) (Frozen, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR {
		return Frozen{}, fmt.Errorf("%s: %w", path, ErrNotDir)
	}
	if err != nil {
		return Frozen{}, &FreezeError{Path: path, Op: "open", Err: err}
	}
	var st unix.Statfs_t
	var fsid [2]int64
	if unix.Fstatfs(fd, &st) == nil {
		fsid = [2]int64{int64(st.Fsid.Val[0]), int64(st.Fsid.Val[1])}
	}
	if err := ioctl(fd, FIFREEZE); err != nil {
		unix.Close(fd)
		return Frozen{}, &FreezeError{Path: path, Op: "freeze", Fsid: fsid, Err: err}
	}
	return Frozen{Path: path, Fsid: fsid, FD: fd}, nil
}

// Thaw issues FITHAW on f's descriptor.
func (LinuxFreezer) Thaw(f Frozen) error {
	if err := ioctl(f.FD, FITHAW); err != nil {
		return &FreezeError{Path: f.Path, Op: "thaw", Err: err}
	}
	return nil
}

// Close closes f's descriptor.
func (LinuxFreezer) Close(f Frozen) {
	if f.FD >= 0 {
		unix.Close(f.FD)
	}
}

// ThawPath opens path and issues FITHAW: the guard's thaw, which holds no
// descriptor. A file system that is not frozen answers EINVAL, which is
// success here.
func ThawPath(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &FreezeError{Path: path, Op: "open", Err: err}
	}
	defer unix.Close(fd)
	if err := ioctl(fd, FITHAW); err != nil && err != unix.EINVAL {
		return &FreezeError{Path: path, Op: "thaw", Err: err}
	}
	return nil
}

func ioctl(fd int, req uint) error {
	// The argument is unused by both ioctls.
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
	if e != 0 {
		return e
	}
	return nil
}

// SystemSync is sync(2).
func SystemSync() { unix.Sync() }

// ReadMounts reads /proc/self/mountinfo.
func ReadMounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := ParseMountInfo(f)
	return m, err
}
