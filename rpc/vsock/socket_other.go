//go:build !linux

package vsock

import (
	"fmt"
	"runtime"
)

func openSocket() (Socket, error) {
	return nil, fmt.Errorf("vsock: not implemented on %s/%s", runtime.GOOS, runtime.GOARCH)
}
