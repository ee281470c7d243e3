package vmxsim

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
	"golang.org/x/sys/unix"
)

// VSockSocket is the listener of the trap's vsock connections: under
// `vmxsim run` each AF_VSOCK stream a guest program connects to the VMX
// becomes a unix connection here, made by the trap (in this process) and
// opened with a vmx.VSockPreamble naming the vsock addresses.
const VSockSocket = "vsock.sock"

// vsock ports and CIDs of the VMX's GuestRPC listeners.
const (
	vsockPortTCLO = 975
	vsockPortRPCI = 976
	cidHypervisor = 0 // VMCI_HYPERVISOR_CONTEXT_ID
	cidHost       = 2 // VMADDR_CID_HOST
)

// TransportStats counts one transport's traffic, in `vmxsim ctl state`'s
// "transports" object (keys vsock, unix, backdoor).
type TransportStats struct {
	RPCI uint64 `json:"rpci"` // RPCI requests answered
	TCLO uint64 `json:"tclo"` // TCLO channels opened
	// Denied counts RPCIs refused because the caller was not
	// privileged (SecureRPC).
	Denied uint64 `json:"denied"`
	// vsock only: connections accepted, RPCI connections from a
	// privileged (below 1024) and from another source port, and
	// connects the VMX reset (no listener, or RPCI over vsock off).
	Connections  uint64 `json:"connections,omitempty"`
	Privileged   uint64 `json:"privileged,omitempty"`
	Unprivileged uint64 `json:"unprivileged,omitempty"`
	Resets       uint64 `json:"resets,omitempty"`
}

// count adds to the counters of transport.
func (c *Core) count(transport string, f func(*TransportStats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.transports[transport]
	if st == nil {
		st = &TransportStats{}
		c.transports[transport] = st
	}
	f(st)
}

// VSockEndpoint is where the trap connects a guest's vsock stream to
// (cid, port): DIR/vsock.sock for the TCLO and RPCI ports of CID 0 or 2,
// and ECONNRESET for anything else, as a VMX without a listener there
// resets the connection, and for RPCI when Options.NoRPCIVSock says the VMX
// resets RPCI vsock connections (guest_rpc.rpci.usevsocket = "FALSE").
func (s *Server) VSockEndpoint(cid, port uint32) (string, syscall.Errno) {
	ok := (cid == cidHypervisor || cid == cidHost) &&
		(port == vsockPortTCLO || port == vsockPortRPCI && !s.Core.opts.NoRPCIVSock)
	if !ok {
		s.Core.count("vsock", func(st *TransportStats) { st.Resets++ })
		return "", unix.ECONNRESET
	}
	return filepath.Join(s.Dir, VSockSocket), 0
}

// serveVSock serves one connection of DIR/vsock.sock. Only this process
// (the trap) may connect there: a connection from any other process is
// closed, so no guest program can claim a privileged port by writing a
// preamble itself.
func (s *Server) serveVSock(ctx context.Context, conn net.Conn) {
	if pid := peerPID(conn); pid != os.Getpid() {
		s.Core.refuse("vsock", fmt.Errorf("connection from pid %d, not from the trap", pid))
		conn.Close()
		return
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [vmx.VSockPreambleSize]byte
	_, err := io.ReadFull(conn, b[:])
	conn.SetReadDeadline(time.Time{})
	p, derr := vmx.DecodeVSockPreamble(b[:])
	if err != nil || derr != nil {
		s.Core.refuse("vsock", fmt.Errorf("no preamble: %v %v", err, derr))
		conn.Close()
		return
	}
	c := s.Core
	privileged := p.SrcPort <= 1023
	c.count("vsock", func(st *TransportStats) { st.Connections++ })
	switch p.DstPort {
	case vsockPortTCLO:
		if err := c.serveTCLOConn(ctx, conn, "vsock"); err != nil && ctx.Err() == nil {
			c.lg.Info("tclo session ended", "transport", "vsock", "err", err)
		}
	case vsockPortRPCI:
		c.count("vsock", func(st *TransportStats) {
			if privileged {
				st.Privileged++
			} else {
				st.Unprivileged++
			}
		})
		c.ServeRPCIConn(ctx, conn, Caller{Transport: "vsock", Privileged: privileged})
	default:
		conn.Close()
	}
}

// peerPID returns the pid of a unix socket peer (SO_PEERCRED), or -1.
func peerPID(c net.Conn) int {
	if cred := peerCred(c); cred != nil {
		return int(cred.Pid)
	}
	return -1
}

// secureDenied reports whether name needs a privileged caller this one is
// not (Options.SecureRPC, the VMX's guest_rpc.rpci.auth.cmd.NAME = "TRUE").
func (c *Core) secureDenied(name string, caller Caller) bool {
	if caller.Privileged || !c.secure[name] {
		return false
	}
	c.count(caller.Transport, func(st *TransportStats) { st.Denied++ })
	return true
}
