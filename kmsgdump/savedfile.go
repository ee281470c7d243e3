package kmsgdump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSavedFile bounds what is read of one saved record file (pstore
// records are a few KiB to a few hundred; kdump's dmesg text a few MiB).
const maxSavedFile = 64 << 20

// errNotRegular is a saved record path that is a symlink (or passes
// through one), a FIFO, a device or a directory.
var errNotRegular = errors.New("a symlink or not a regular file: refused")

// readSaved reads the regular file rel (slash-separated) under root, a
// pstore or crash directory, without following a symlink in any part of
// rel: each directory is opened with O_NOFOLLOW, then the file, so a link
// planted in place of a record (or of a crash subdirectory) is refused,
// not read as root and shipped. FIFOs and devices are refused too (opened
// non-blocking, so a FIFO cannot hang the dumper).
func readSaved(root, rel string) ([]byte, os.FileInfo, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	dfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		fl := flags
		if i < len(parts)-1 {
			fl |= unix.O_DIRECTORY
		}
		fd, err := unix.Openat(dfd, p, fl, 0)
		unix.Close(dfd)
		if err != nil {
			path := filepath.Join(root, filepath.Join(parts[:i+1]...))
			if err == unix.ELOOP || err == unix.ENOTDIR {
				return nil, nil, fmt.Errorf("%s: %w", path, errNotRegular)
			}
			return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		dfd = fd
	}
	f := os.NewFile(uintptr(dfd), filepath.Join(root, rel))
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w", f.Name(), errNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSavedFile))
	return b, info, err
}

// readSavedRecordFile reads one file of a record found by ScanPstore
// (depth 1 under its directory) or ScanCrash (depth 2) as readSaved does.
func readSavedRecordFile(kind, path string) ([]byte, error) {
	root, rel := filepath.Dir(path), filepath.Base(path)
	if kind == "kdump" {
		root, rel = filepath.Dir(root), filepath.Base(root)+"/"+rel
	}
	b, _, err := readSaved(root, rel)
	return b, err
}
