//go:build !linux

package sockchan

import (
	"errors"
	"net"
)

// Quiet is Linux's (epoll); elsewhere it fails and the caller keeps c.
func Quiet(c net.Conn) (net.Conn, error) {
	return nil, errors.New("sockchan: quiet sockets need Linux")
}
