package toolsconf

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Trusted checks, like sshd's StrictModes, that nobody but root (or,
// when this process does not run as root, its own user) can change what
// path names: the file it resolves to, every symlink on the way, and
// every directory above each of them must be owned by root or the
// effective uid and not writable by group or others. A directory with
// the sticky bit set (/tmp) may be writable by others, since they cannot
// replace what it holds that belongs to root. vmtoolsd reads tools.conf
// and runs power scripts as root, so a file a user could edit would run
// that user's commands as root.
func Trusted(path string) error { return trustedFor(path, uint32(os.Geteuid())) }

// maxLinks bounds the symlinks followed, as the kernel's ELOOP does.
const maxLinks = 40

func trustedFor(path string, uid uint32) error {
	p, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	checked := map[string]bool{}
	for range maxLinks {
		if err := trustedDirs(filepath.Dir(p), uid, checked); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if err := trustedOwner(p, fi, uid); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if fi.Mode().Perm()&0o022 != 0 {
				return fmt.Errorf("%s is writable by group or others (mode %04o)", p, fi.Mode().Perm())
			}
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean(target)
	}
	return fmt.Errorf("%s: too many levels of symbolic links", path)
}

// trustedDirs checks dir and every directory above it (resolving any
// symlinked ancestor the same way).
func trustedDirs(dir string, uid uint32, checked map[string]bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for d := real; ; d = filepath.Dir(d) {
		if checked[d] {
			break
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if err := trustedOwner(d, fi, uid); err != nil {
			return err
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("directory %s is writable by group or others (mode %04o)", d, fi.Mode().Perm())
		}
		checked[d] = true
		if d == filepath.Dir(d) {
			break
		}
	}
	if dir != real {
		// The symlinks leading to the directory.
		return trustedLinks(dir, uid, checked)
	}
	return nil
}

// trustedLinks checks the owners of the symlinks among dir's
// components.
func trustedLinks(dir string, uid uint32, checked map[string]bool) error {
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if err := trustedOwner(d, fi, uid); err != nil {
				return err
			}
		}
	}
	return nil
}

func trustedOwner(p string, fi fs.FileInfo, uid uint32) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner", p)
	}
	if st.Uid != 0 && st.Uid != uid {
		what := "file"
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			what = "symlink"
		case fi.IsDir():
			what = "directory"
		}
		if uid == 0 {
			return fmt.Errorf("%s %s is owned by uid %d, not root", what, p, st.Uid)
		}
		return fmt.Errorf("%s %s is owned by uid %d, not root or uid %d", what, p, st.Uid, uid)
	}
	return nil
}
