//go:build !(linux && amd64)

package trap

const envNoTracer = "GOVMTOOLS_TRAP_TEST_NO_TRACER"

func noTracerChild() int { return 1 }
