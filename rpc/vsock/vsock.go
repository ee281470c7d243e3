// Package vsock dials the VMX over AF_VSOCK: TCLO to CID 0 port 975 with a
// plain connect, and RPCI to CID 0 port 976 from a privileged source port,
// which the VMX treats as a root caller (docs/architecture.md section 2).
//
// The privileged dial walks source ports down from 1023 as open-vm-tools'
// simpleSocket.c does: EADDRINUSE moves to the next lower port, ECONNRESET
// too (the VMX may be slow releasing a port pair) but at most
// MaxConnResets times, EINTR retries the same port, ENOBUFS sleeps 1 ms and
// retries the same port at most MaxNoBufs times, and EACCES on bind (not
// root, no CAP_NET_BIND_SERVICE) falls back to an unprivileged source port.
//
// Every socket operation goes through the Socket seam, so the walk is
// tested with scripted errors and socketpairs. Development machines are not
// VMware VMs and must never open a real AF_VSOCK socket: CID 0 and 2 reach
// the host's own services there.
package vsock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the VMX's GuestRPC listeners.
const (
	CIDHypervisor = 0   // VMCI_HYPERVISOR_CONTEXT_ID; not 2, the host
	PortTCLO      = 975 // GUESTRPC_TCLO_VSOCK_LISTEN_PORT
	PortRPCI      = 976 // GUESTRPC_RPCI_VSOCK_LISTEN_PORT
)

// Source-port walk limits.
const (
	PrivilegedPortMax = 1023
	PrivilegedPortMin = 1
	MaxConnResets     = 8
	MaxNoBufs         = 5
	// PortAny is VMADDR_PORT_ANY: let the kernel choose.
	PortAny = 0xFFFFFFFF
	// MinBuffer is the socket buffer size open-vm-tools sets on the TCLO
	// connection, each way.
	MinBuffer = 64 << 10
)

// Socket is one AF_VSOCK stream socket, before and after connect.
type Socket interface {
	Bind(port uint32) error
	Connect(ctx context.Context, cid, port uint32) error
	// SetBuffers raises the send and receive buffers to at least n bytes.
	SetBuffers(n int) error
	// Conn returns the connected socket as a net.Conn; the Conn owns the
	// socket from then on.
	Conn() (net.Conn, error)
	Close() error
}

// Dialer opens GuestRPC connections.
type Dialer struct {
	// Socket creates a new unconnected socket. Nil means a real AF_VSOCK
	// socket, which must only ever be used on a VMware VM.
	Socket func() (Socket, error)
	// Sleep waits between ENOBUFS retries; nil means time.Sleep.
	Sleep func(time.Duration)
	// Logger receives the port walk at debug level; nil discards it.
	Logger *slog.Logger
}

// ErrConnResets is returned when the VMX kept resetting connections from
// privileged ports: the sign of guest_rpc.rpci.usevsocket = "FALSE", after
// which callers should use the backdoor.
var ErrConnResets = errors.New("vsock: VMX resets rpci connections")

// DialTCLO connects to the TCLO port with any source port and raises the
// socket buffers to 64 KiB.
func (d *Dialer) DialTCLO(ctx context.Context) (net.Conn, error) {
	s, err := d.socket()
	if err != nil {
		return nil, err
	}
	if err := s.Connect(ctx, CIDHypervisor, PortTCLO); err != nil {
		s.Close()
		return nil, fmt.Errorf("vsock: connect %d:%d: %w", CIDHypervisor, PortTCLO, err)
	}
	if err := s.SetBuffers(MinBuffer); err != nil {
		d.logger().Debug("vsock: cannot raise socket buffers", "err", err)
	}
	return conn(s)
}

// DialRPCI connects to the RPCI port from the highest free privileged
// source port. privileged reports whether it got one; when the process may
// not bind below 1024 the connection is made from any port and the VMX
// treats the caller as unprivileged.
func (d *Dialer) DialRPCI(ctx context.Context) (c net.Conn, privileged bool, err error) {
	return d.dialPrivileged(ctx, CIDHypervisor, PortRPCI)
}

func (d *Dialer) dialPrivileged(ctx context.Context, cid, port uint32) (net.Conn, bool, error) {
	resets, nobufs := 0, 0
	var lastErr error
	for local := uint32(PrivilegedPortMax); local >= PrivilegedPortMin; {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		s, err := d.socket()
		if err != nil {
			return nil, false, err
		}
		if err := s.Bind(local); err != nil {
			s.Close()
			switch {
			case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
				d.logger().Debug("vsock: no privileged port allowed; dialing unprivileged", "err", err)
				c, err := d.dialFrom(ctx, cid, port, PortAny)
				return c, false, err
			case errors.Is(err, unix.EADDRINUSE):
				local--
				continue
			}
			return nil, false, fmt.Errorf("vsock: bind source port %d: %w", local, err)
		}
		err = s.Connect(ctx, cid, port)
		if err == nil {
			c, err := conn(s)
			return c, err == nil, err
		}
		s.Close()
		lastErr = err
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS):
			if nobufs++; nobufs > MaxNoBufs {
				return nil, false, fmt.Errorf("vsock: connect %d:%d from port %d: %w (after %d retries)", cid, port, local, err, MaxNoBufs)
			}
			d.sleep(time.Millisecond)
			continue
		case errors.Is(err, unix.ECONNRESET):
			if resets++; resets > MaxConnResets {
				return nil, false, fmt.Errorf("%w: %d resets, last from port %d: %w", ErrConnResets, MaxConnResets, local, err)
			}
			local--
			continue
		case errors.Is(err, unix.EADDRINUSE):
			local--
			continue
		}
		return nil, false, fmt.Errorf("vsock: connect %d:%d from port %d: %w", cid, port, local, err)
	}
	return nil, false, fmt.Errorf("vsock: no free privileged source port for %d:%d: %w", cid, port, lastErr)
}

func (d *Dialer) dialFrom(ctx context.Context, cid, port, local uint32) (net.Conn, error) {
	s, err := d.socket()
	if err != nil {
		return nil, err
	}
	if local != PortAny {
		if err := s.Bind(local); err != nil {
			s.Close()
			return nil, fmt.Errorf("vsock: bind source port %d: %w", local, err)
		}
	}
	if err := s.Connect(ctx, cid, port); err != nil {
		s.Close()
		return nil, fmt.Errorf("vsock: connect %d:%d: %w", cid, port, err)
	}
	return conn(s)
}

func conn(s Socket) (net.Conn, error) {
	c, err := s.Conn()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("vsock: %w", err)
	}
	return c, nil
}

func (d *Dialer) socket() (Socket, error) {
	open := d.Socket
	if open == nil {
		open = openSocket
	}
	s, err := open()
	if err != nil {
		return nil, fmt.Errorf("vsock: socket: %w", err)
	}
	return s, nil
}

func (d *Dialer) sleep(t time.Duration) {
	if d.Sleep != nil {
		d.Sleep(t)
		return
	}
	time.Sleep(t)
}

func (d *Dialer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}
