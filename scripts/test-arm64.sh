#!/usr/bin/env bash
# The arm64 tier of `make test`: the unit, sim and e2e tests compiled for
# arm64 and run under qemu-aarch64-static (user-mode emulation; no -race,
# which the emulator does not support). GOVMTOOLS_EMULATOR tells the
# tests they are emulated.
#
# - unit and sim: every package but the ones below.
# - e2e (internal/e2e, over `unix:`): testutil.Binaries builds the arm64
#   binaries (GOARCH follows the test binary) and the kernel runs them
#   through qemu via binfmt_misc (scripts/test-deps.d/46-binfmt-arm64.sh).
#   ARM64_E2E_RUN (below) can narrow it; the trap, the peer and
#   freezing are left out by the testutil
#   guards (NotOnArm64, NotEmulated) with the reasons CONTRIBUTING.md lists.
# - not here: packaging (builds .deb/.rpm for both arches, minutes, no
#   arch-specific code), systemd (runs the host's systemd-analyze), bench.
#
# Without the emulator it skips with a message, or fails under
# GOVMTOOLS_REQUIRE_ALL=1; without the binfmt_misc entry the e2e tests
# skip the same way (testutil.Binaries).
set -euo pipefail
qemu=$(command -v qemu-aarch64-static || true)
if [ -z "$qemu" ]; then
	msg="test-arm64: qemu-aarch64-static missing: run make test-deps as root (Debian's qemu-user-static); the arm64 tier did not run"
	echo "$msg" >&2
	[ "${GOVMTOOLS_REQUIRE_ALL:-}" = 1 ] && exit 1
	exit 0
fi
export GOVMTOOLS_EMULATOR=$qemu GOARCH=arm64
pkgs=$(go list ./... | grep -v -E '/internal/e2e$|/packaging(/|$)|/systemd$|/bench(/|$)')
# All of e2e by default (about 90 s emulated); ARM64_E2E_RUN narrows it.
run=${ARM64_E2E_RUN:-.}
# shellcheck disable=SC2086
go test -exec "$qemu" -count=1 -timeout 14m $pkgs
go test -exec "$qemu" -count=1 -timeout 14m -run "$run" ./internal/e2e
