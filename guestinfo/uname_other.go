//go:build !linux

package guestinfo

import "errors"

func sysUname() (Uname, error) { return Uname{}, errUnimplemented }

func sysStatfs(path string) (FSStat, error) {
	return FSStat{}, errors.New("guestinfo: statfs unsupported")
}
