#!/usr/bin/env bash
# The packages ship vmware-vix-helper, the one cgo binary (PAM), for amd64
# and arm64 (packaging/, `make package`). Its arm64 build is a cgo cross
# build, which needs Debian's cross compiler (gcc-aarch64-linux-gnu, with
# the arm64 C library in /usr/aarch64-linux-gnu) and the arm64 libpam to
# link against: libpam0g-dev:arm64, installed through dpkg multiarch. The
# arm64 tier (scripts/test-arm64.sh) also runs that helper under qemu,
# which needs the arm64 loader and libraries (libc6:arm64, libpam0g:arm64)
# and PAM modules (libpam-modules:arm64: pam_unix for /etc/pam.d/other).
# This script adds the arm64 architecture to dpkg (dpkg --add-architecture
# arm64; apt then also reads arm64 package lists, and installs arm64
# packages only when asked by NAME:arm64), runs apt-get update, and
# installs gcc-aarch64-linux-gnu, libpam0g-dev:arm64 and
# libpam-modules:arm64 (with libpam0g:arm64, libc6:arm64 and their arm64
# libraries under /usr/lib/aarch64-linux-gnu). The amd64 build needs gcc
# and libpam0g-dev (50-pam.sh). Idempotent; a no-op when done.
set -euo pipefail
have() {
	command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
		dpkg -s libpam0g-dev:arm64 >/dev/null 2>&1 &&
		dpkg -s libpam-modules:arm64 >/dev/null 2>&1
}
have && exit 0
if [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ]; then
	echo "test-deps: the arm64 helper is cross-built from amd64 only; packages built here lack it" >&2
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "test-deps: gcc-aarch64-linux-gnu, libpam0g-dev:arm64 or libpam-modules:arm64 missing (as root: dpkg --add-architecture arm64; apt-get update; apt-get install gcc-aarch64-linux-gnu libpam0g-dev:arm64 libpam-modules:arm64); make package fails for arm64 and the arm64 guest-operations tests skip" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
	echo "test-deps: added the arm64 architecture to dpkg (multiarch) for libpam0g-dev:arm64" >&2
fi
# An update is needed after adding the architecture (no arm64 lists yet).
if ! apt-cache show libpam0g-dev:arm64 >/dev/null 2>&1; then
	apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
fi
# --no-remove: never let an arm64 library take an amd64 package's place.
"${apt[@]}" install --no-remove gcc-aarch64-linux-gnu libpam0g-dev:arm64 libpam-modules:arm64 >/dev/null
have
echo "test-deps: $(aarch64-linux-gnu-gcc --version | head -1), libpam0g-dev:arm64 and libpam-modules:arm64 $(dpkg-query -W -f='${Version}' libpam0g-dev:arm64) installed" >&2
