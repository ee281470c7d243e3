package guestinfo

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func sysUname() (Uname, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Uname{}, fmt.Errorf("guestinfo: uname: %w", err)
	}
	return Uname{
		Sysname:  unix.ByteSliceToString(u.Sysname[:]),
		Nodename: unix.ByteSliceToString(u.Nodename[:]),
		Release:  unix.ByteSliceToString(u.Release[:]),
		Machine:  unix.ByteSliceToString(u.Machine[:]),
	}, nil
}

func sysStatfs(path string) (FSStat, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return FSStat{}, err
	}
	return FSStat{Bsize: int64(st.Bsize), Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail}, nil
}
