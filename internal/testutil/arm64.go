package testutil

import (
	"os"
	"runtime"
	"sort"
	"syscall"
	"testing"
)

// EnvEmulator names the user-mode emulator the test binaries run under;
// scripts/test-arm64.sh sets it (to qemu-aarch64-static's path) for the
// arm64 tier. Empty means the tests run natively.
const EnvEmulator = "GOVMTOOLS_EMULATOR"

// What cannot run in the arm64 tier, by key, with the reason. The skips
// are documented (CONTRIBUTING.md, "The arm64 tier", lists every reason;
// TestArm64ExclusionsDocumented checks it), so GOVMTOOLS_REQUIRE_ALL=1
// allows them as it allows NotApplicable.
const (
	// Arm64Trap: the tests that need `vmxsim run` (RequireTrap), and so
	// Debian's tools (Peer), which run under it.
	Arm64Trap = "trap"
	// Arm64Peer: Debian's open-vm-tools, unpacked from the amd64 .deb.
	Arm64Peer = "peer"
	// EmulatedFreeze: the tests that freeze a file system (LoopFS, and
	// FIFREEZE on a tmpfs).
	EmulatedFreeze = "fifreeze"
	// EmulatedBigTransfer: TestGuestTransfer, which moves 1 GiB.
	EmulatedBigTransfer = "1gib-transfer"
	// EmulatedRSS: memory bounds on a daemon's VmRSS.
	EmulatedRSS = "emulator-rss"
)

// Arm64Exclusions maps each key to why those tests cannot run in the
// arm64 tier.
var Arm64Exclusions = map[string]string{
	Arm64Trap:           "the ptrace trap (vmxsim run) is linux/amd64 only: it decodes x86-64 IN/OUT instructions and rewrites x86-64 syscalls at seccomp stops, so no arm64 program runs under it",
	Arm64Peer:           "Debian's open-vm-tools in .cache/peer are the amd64 packages, and they run under the trap",
	EmulatedBigTransfer: "TestGuestTransfer moves 1 GiB each way and bounds every process's peak memory: natively that takes about 40 s, through the emulator several times as long, most of the tier's budget, and qemu's own memory would count in the bound",
	EmulatedRSS:         "under qemu-user a process's VmRSS is the emulator's, whose translation cache grows with the code it runs (measured: vmtoolsd 37 MiB after 1,000 malformed VIX requests, 42 MiB after 5,000; natively 10 and 12.5), so a bound on the guest program's memory does not hold there",
	EmulatedFreeze:      "qemu-user does not implement the FIFREEZE and FITHAW ioctls, so a freeze through the emulator fails or hangs, and a hung test leaves a frozen loop mount behind",
}

// Emulated reports whether this test binary runs under user-mode
// emulation (EnvEmulator is set).
func Emulated() bool { return os.Getenv(EnvEmulator) != "" }

// NotOnArm64 skips the test on arm64 for the documented reason key (a
// key of Arm64Exclusions). The skip is allowed under
// GOVMTOOLS_REQUIRE_ALL=1: the reason is in CONTRIBUTING.md.
func NotOnArm64(t testing.TB, key string) {
	t.Helper()
	if runtime.GOARCH == "arm64" {
		skipArm64(t, key)
	}
}

// NotEmulated skips the test under user-mode emulation (Emulated) for
// the documented reason key; natively (amd64, or arm64 hardware) it runs.
func NotEmulated(t testing.TB, key string) {
	t.Helper()
	if Emulated() {
		skipArm64(t, key)
	}
}

func skipArm64(t testing.TB, key string) {
	t.Helper()
	why, ok := Arm64Exclusions[key]
	if !ok {
		t.Fatalf("testutil: %q is not a documented arm64 exclusion (Arm64Exclusions)", key)
	}
	t.Skipf("not in the arm64 tier (%s): %s", key, why)
}

// arm64ExclusionKeys lists the keys in order, for the docs check.
func arm64ExclusionKeys() []string {
	keys := make([]string, 0, len(Arm64Exclusions))
	for k := range Arm64Exclusions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// NewPIDCloneflag is the Cloneflags value a test starts a daemon with to
// give it a PID namespace of its own (so nothing it starts outlives it):
// CLONE_NEWPID natively, 0 under emulation, because qemu-user refuses
// clone(2) with namespace flags (EINVAL). Emulated, the daemon runs in
// the test's PID namespace; its Pdeathsig still ends it with the test.
func NewPIDCloneflag() uintptr {
	if Emulated() {
		return 0
	}
	return syscall.CLONE_NEWPID
}

// RequireHelperPAM requires a vmware-vix-helper that authenticates with
// PAM: natively the cgo build of Binaries; in the emulated arm64 tier the
// cgo cross build (CrossPAM), without which every guest operation would
// be refused as unauthenticated.
func RequireHelperPAM(t testing.TB) {
	t.Helper()
	if Emulated() {
		Require(t, CrossPAM(), "the arm64 cgo build of vmware-vix-helper ("+CrossCC+", libpam0g-dev:arm64, libpam-modules:arm64)", "run make test-deps as root (scripts/test-deps.d/48-cross-pam-arm64.sh)")
	}
}
