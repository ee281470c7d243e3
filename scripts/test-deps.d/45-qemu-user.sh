#!/usr/bin/env bash
# The arm64 tier (scripts/test-arm64.sh) runs arm64 test binaries under
# user-mode emulation: qemu-aarch64-static from Debian's qemu-user-static.
set -euo pipefail
command -v qemu-aarch64-static >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: qemu-user-static missing; the arm64 tier will skip (install it as root)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q qemu-user-static >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q qemu-user-static >/dev/null; }
