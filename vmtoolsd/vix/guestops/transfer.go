package guestops

import (
	"path/filepath"
	"syscall"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// initiateFrom is InitiateFileTransferFromGuest (188): the path must be
// a regular file (a symlink is 3, a directory 20001, a missing one its
// errno); the payload is one <fxi> whose Name is the full path. Only the
// checks run here; the bytes move later over HGFS (opcode 84).
func initiateFrom(p *vixproto.ListFiles) Result {
	var st syscall.Stat_t
	if err := syscall.Lstat(p.Path, &st); err != nil {
		return FromErr(err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		return vixErr(vixproto.ErrInvalidArg)
	case syscall.S_IFDIR:
		return vixErr(vixproto.ErrNotAFile)
	}
	f, err := statInfo(p.Path, p.Path)
	if err != nil {
		return vixErr(vixproto.ErrFileAccess)
	}
	return ok(vixproto.AppendFileInfo(nil, &f))
}

// initiateTo is InitiateFileTransferToGuest (189), checked as the user:
// Windows attributes are 3, a symlink 3, a directory 20001, an existing
// file 12 without overwrite and 13 when not writable; a new file needs a
// writable parent directory (22 when the parent is not a directory).
func initiateTo(p *vixproto.FileOp) Result {
	if p.Options&vixproto.AttrWindowsOnly != 0 {
		return vixErr(vixproto.ErrInvalidArg)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p.Path, &st); err == nil {
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFLNK:
			return vixErr(vixproto.ErrInvalidArg)
		case syscall.S_IFDIR:
			return vixErr(vixproto.ErrNotAFile)
		}
		if !p.Flag {
			return vixErr(vixproto.ErrFileAlreadyExists)
		}
		if syscall.Access(p.Path, 2) != nil {
			return vixErr(vixproto.ErrFileAccess)
		}
		return ok(nil)
	} else if err != syscall.ENOENT && err != syscall.ENOTDIR {
		return FromErr(err)
	}
	dir := filepath.Dir(p.Path)
	if err := syscall.Stat(dir, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return vixErr(vixproto.ErrFileNameInvalid)
	}
	if syscall.Access(dir, 2|1) != nil {
		return vixErr(vixproto.ErrFileAccess)
	}
	return ok(nil)
}
