package trap

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. Run
// with envNoTracer set, the binary is instead the child of
// TestFilterFailsClosed.
func TestMain(m *testing.M) {
	if os.Getenv(envNoTracer) == "1" {
		os.Exit(noTracerChild())
	}
	goleak.VerifyTestMain(m)
}
