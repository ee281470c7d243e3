//go:build !(linux && amd64)

package trap

import (
	"context"
	"fmt"
	"runtime"
)

// Supported reports whether this build can run the trap.
const Supported = false

// Run reports that the trap needs linux/amd64.
func Run(ctx context.Context, cfg Config) (int, error) {
	return 0, fmt.Errorf("trap: vmxsim run needs linux/amd64 (this is %s/%s); use vmxsim serve and --rpc unix:DIR", runtime.GOOS, runtime.GOARCH)
}

// HelperMain is not used here.
func HelperMain(args []string) int { return 127 }
