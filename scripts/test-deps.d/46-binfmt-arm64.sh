#!/usr/bin/env bash
# The arm64 e2e tier (scripts/test-arm64.sh) execs the arm64 binaries that
# testutil.Binaries builds, so the kernel must hand aarch64 ELF files to
# qemu-aarch64-static: binfmt_misc, mounted, with a qemu-aarch64 entry.
# Debian's qemu-user-static ships the entry (/usr/lib/binfmt.d); where
# nothing loaded it (no systemd-binfmt, no binfmt-support), this script
# mounts binfmt_misc if needed and writes that entry. It changes the
# running kernel's binfmt table (until reboot) and says so; a no-op when
# the entry is there.
set -euo pipefail
bm=/proc/sys/fs/binfmt_misc
[ -e "$bm/qemu-aarch64" ] && exit 0
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ "$(id -u)" -ne 0 ] || [ ! -r "$conf" ]; then
	echo "test-deps: aarch64 binfmt_misc entry missing (as root, with qemu-user-static installed, rerun make test-deps); the arm64 e2e tier will skip" >&2
	exit 0
fi
if [ ! -e "$bm/register" ]; then
	if ! mount -t binfmt_misc binfmt_misc "$bm"; then
		echo "test-deps: cannot mount binfmt_misc on $bm (a container without the privilege?); the arm64 e2e tier will skip" >&2
		exit 0
	fi
	echo "test-deps: mounted binfmt_misc on $bm" >&2
fi
if ! grep -v '^#' "$conf" | grep . > "$bm/register"; then
	echo "test-deps: registering qemu-aarch64 in binfmt_misc failed; the arm64 e2e tier will skip" >&2
	exit 0
fi
echo "test-deps: registered qemu-aarch64 in binfmt_misc (aarch64 programs now run under qemu-aarch64-static until reboot)" >&2
