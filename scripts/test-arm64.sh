#!/usr/bin/env bash
# The arm64 tier of `make test`: every package whose tests do not start the
# built binaries (the e2e tier and the packages listed below do, and this
# machine cannot exec arm64 programs without binfmt_misc) or freeze loop
# file systems (vmtoolsd/vmbackup: FIFREEZE through the emulator never
# returns, leaving a frozen mount behind), compiled for
# arm64 and run under qemu-aarch64-static (user-mode emulation; no -race,
# which the emulator does not support). Without the emulator it skips with
# a message, or fails under GOVMTOOLS_REQUIRE_ALL=1.
set -euo pipefail
qemu=$(command -v qemu-aarch64-static || true)
if [ -z "$qemu" ]; then
	msg="test-arm64: qemu-aarch64-static missing: run make test-deps as root (Debian's qemu-user-static); the arm64 tier did not run"
	echo "$msg" >&2
	[ "${GOVMTOOLS_REQUIRE_ALL:-}" = 1 ] && exit 1
	exit 0
fi
pkgs=$(go list ./... | grep -v -E '/internal/e2e$|/internal/testutil$|/packaging(/|$)|/systemd$|/bench(/|$)|/vmtoolsd/vmbackup$')
# shellcheck disable=SC2086
GOARCH=arm64 exec go test -exec "$qemu" -count=1 -timeout 14m $pkgs
