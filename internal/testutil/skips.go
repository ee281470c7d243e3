package testutil

import (
	"os"
	"testing"
)

// NotApplicable skips a test that cannot apply to what is tested, for
// the documented reason why (a feature HGFS has no form of, say). It is
// the one skip GOVMTOOLS_REQUIRE_ALL=1 allows: the reason must also be
// listed in docs/ (a test of the caller checks the list).
func NotApplicable(t testing.TB, why string) {
	t.Helper()
	t.Skipf("not applicable: %s", why)
}

// GuardSkips routes a skip the test takes on its own, outside this
// package (a third-party suite such as go-fuse's posixtest calls t.Skip
// itself), through the guard: when the test ends skipped and allowed is
// empty, GOVMTOOLS_REQUIRE_ALL=1 turns the skip into a failure. allowed
// is the documented reason the skip is expected, or "".
func GuardSkips(t testing.TB, allowed string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Skipped() || t.Failed() {
			return
		}
		if allowed != "" {
			t.Logf("documented skip: %s", allowed)
			return
		}
		if os.Getenv(EnvRequireAll) == "1" {
			t.Errorf("skipped outside the documented list; %s=1 forbids it", EnvRequireAll)
		}
	})
}
