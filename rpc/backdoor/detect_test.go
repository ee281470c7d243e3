package backdoor

import (
	"errors"
	"testing"
)

// TestDetect runs on the development machines, which are not VMware VMs:
// Detect must say so without faulting. On a VMware VM it must agree with
// the CPUID signature.
func TestDetect(t *testing.T) {
	err := Detect()
	if err == nil {
		if sig := HypervisorSignature(); sig != VMwareSignature {
			t.Fatalf("Detect accepted signature %q", sig)
		}
		return
	}
	if !errors.Is(err, ErrNotVMware) {
		t.Fatalf("Detect = %v, want ErrNotVMware", err)
	}
	t.Logf("Detect: %v", err)
}
