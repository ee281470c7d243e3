package kmsgdump

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// secureDir is an open directory that only this process's user (root,
// for the daemon) can change: owned by the effective uid, no group or
// other permission bits. Every file in it is opened relative to the
// directory's descriptor and without following symlinks, so a symlink
// planted in it (or a directory swapped for it) is never written
// through.
type secureDir struct {
	path string
	f    *os.File
}

// openSecureDir creates dir (0700) if it does not exist and opens it,
// refusing a symlink, a directory owned by another user, and one with
// group or other permission bits.
func openSecureDir(dir string) (*secureDir, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return checkSecureDir(dir, os.NewFile(uintptr(fd), dir))
}

func checkSecureDir(path string, f *os.File) (*secureDir, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		f.Close()
		return nil, fmt.Errorf("%s is owned by uid %d, not %d: refusing it (chown %d and chmod 0700 it, or remove it)", path, st.Uid, uid, uid)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("%s has mode %04o: refusing it; it must be 0700 (chmod 0700 it)", path, fi.Mode().Perm())
	}
	return &secureDir{path: path, f: f}, nil
}

func (d *secureDir) fd() int { return int(d.f.Fd()) }

func (d *secureDir) close() error { return d.f.Close() }

// open opens name in the directory without following a symlink; it
// must be a regular file.
func (d *secureDir) open(name string, flag int, perm uint32) (*os.File, error) {
	p := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd(), name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: refusing to follow it", p)
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return f, nil
}

// readFile reads name; a missing file is fs.ErrNotExist.
func (d *secureDir) readFile(name string) ([]byte, error) {
	f, err := d.open(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFile replaces name with data so that after a crash it holds
// either the old or the new content, and the new one once it returns: a
// new file is written and fsynced, renamed over name (replacing whatever
// name was, a planted symlink included, never writing through it), and
// the directory fsynced.
func (d *secureDir) writeFile(name string, data []byte, perm uint32) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := "." + name + ".tmp" + hex.EncodeToString(rnd[:])
	f, err := d.open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer unix.Unlinkat(d.fd(), tmp, 0) // after a successful rename this fails harmlessly
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Join(d.path, name), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", filepath.Join(d.path, name), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd(), tmp, d.fd(), name); err != nil {
		return &fs.PathError{Op: "rename", Path: filepath.Join(d.path, name), Err: err}
	}
	if err := unix.Fsync(d.fd()); err != nil {
		return fmt.Errorf("fsync %s: %w", d.path, err)
	}
	return nil
}

// subdir creates (0700) and opens the subdirectory name, with the same
// checks as the directory itself and without following a symlink.
func (d *secureDir) subdir(name string) (*secureDir, error) {
	if err := unix.Mkdirat(d.fd(), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &fs.PathError{Op: "mkdir", Path: filepath.Join(d.path, name), Err: err}
	}
	p := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("%s is not a directory (a symlink?): refusing it", p)
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	return checkSecureDir(p, os.NewFile(uintptr(fd), p))
}

// names lists the directory's regular files.
func (d *secureDir) names() ([]string, error) {
	fd, err := unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, err
}

func (d *secureDir) remove(name string) error { return unix.Unlinkat(d.fd(), name, 0) }
