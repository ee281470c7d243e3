//go:build linux

package vsock

import (
	"context"
	"net"

	"github.com/mdlayher/socket"
	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"
)

// realSocket is an AF_VSOCK socket. It is created only by openSocket, which
// only runs on a VMware VM (rpc/transport checks before dialing).
type realSocket struct {
	c *socket.Conn
}

func openSocket() (Socket, error) {
	c, err := socket.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0, "vsock", nil)
	if err != nil {
		return nil, err
	}
	return &realSocket{c: c}, nil
}

func (s *realSocket) Bind(port uint32) error {
	return s.c.Bind(&unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: port})
}

func (s *realSocket) Connect(ctx context.Context, cid, port uint32) error {
	_, err := s.c.Connect(ctx, &unix.SockaddrVM{CID: cid, Port: port})
	return err
}

func (s *realSocket) SetBuffers(n int) error {
	if err := s.c.SetReadBuffer(n); err != nil {
		return err
	}
	return s.c.SetWriteBuffer(n)
}

func (s *realSocket) Conn() (net.Conn, error) {
	local, remote := &vsock.Addr{}, &vsock.Addr{}
	if sa, err := s.c.Getsockname(); err == nil {
		if vm, ok := sa.(*unix.SockaddrVM); ok {
			local = &vsock.Addr{ContextID: vm.CID, Port: vm.Port}
		}
	}
	if sa, err := s.c.Getpeername(); err == nil {
		if vm, ok := sa.(*unix.SockaddrVM); ok {
			remote = &vsock.Addr{ContextID: vm.CID, Port: vm.Port}
		}
	}
	return &streamConn{Conn: s.c, local: local, remote: remote}, nil
}

func (s *realSocket) Close() error { return s.c.Close() }

// streamConn gives a connected socket.Conn the net.Conn address methods.
type streamConn struct {
	*socket.Conn
	local, remote net.Addr
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }
