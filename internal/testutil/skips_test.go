package testutil

import (
	"fmt"
	"runtime"
	"testing"
)

// TestGuardSkips: an undocumented skip fails under
// GOVMTOOLS_REQUIRE_ALL=1, a documented one does not, and without the
// variable both stay skips.
func TestGuardSkips(t *testing.T) {
	for _, c := range []struct {
		requireAll, allowed string
		skip, wantFail      bool
	}{
		{"1", "", true, true},
		{"1", "documented reason", true, false},
		{"", "", true, false},
		{"1", "", false, false}, // no skip: nothing to check
	} {
		t.Setenv(EnvRequireAll, c.requireAll)
		ft := &fakeT{}
		GuardSkips(ft, c.allowed)
		ft.skipped = c.skip
		ft.cleanup()
		if ft.failed != c.wantFail {
			t.Errorf("%+v: failed %v, want %v", c, ft.failed, c.wantFail)
		}
	}
}

// fakeT records what a helper (GuardSkips, StartLogged) does with a
// test: its cleanups, whether it failed and what it logged.
type fakeT struct {
	testing.TB
	cleanups []func()
	skipped  bool
	failed   bool
	logs     []string
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Skipped() bool         { return f.skipped }
func (f *fakeT) Failed() bool          { return f.failed }
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// Fatalf fails and ends the calling goroutine, as testing.T's does.
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeT) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}
