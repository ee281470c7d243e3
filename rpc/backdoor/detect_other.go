//go:build !amd64

package backdoor

import (
	"fmt"
	"runtime"
)

func detect() error {
	return fmt.Errorf("%w: detection not implemented on %s", ErrNotVMware, runtime.GOARCH)
}

// HypervisorSignature returns "" where CPUID does not exist.
func HypervisorSignature() string { return "" }
