//go:build !unix

package sockchan

import (
	"context"
	"io"
	"net"
	"sync/atomic"
)

// kernelConn is a stand-in: outside unix, replies are waited for in Go's
// network poller.
type kernelConn struct{}

// reset returns conn itself.
func (*kernelConn) reset(_ context.Context, conn net.Conn, _ *atomic.Bool) io.ReadWriter { return conn }
