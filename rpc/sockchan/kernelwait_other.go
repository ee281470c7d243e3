//go:build !unix

package sockchan

import (
	"context"
	"io"
	"net"
	"sync/atomic"
)

// kernelReader is conn itself: outside unix, replies are waited for in
// Go's network poller.
func kernelReader(_ context.Context, conn net.Conn, _ *atomic.Bool) io.Reader { return conn }

// tryWrite writes nothing outside unix: the caller's conn.Write does it.
func tryWrite(net.Conn, []byte) int { return 0 }
