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
