#!/usr/bin/env bash
# The C compiler and PAM headers vmware-vix-helper's cgo build needs (gcc,
# libpam0g-dev; without gcc go builds it with CGO_ENABLED=0, a helper that
# refuses every login, and make package stops), and passwd (useradd,
# chpasswd) for the guest-operations tests' throwaway users. Idempotent; a
# no-op when installed.
set -euo pipefail
need=()
dpkg -s libpam0g-dev >/dev/null 2>&1 || need+=(libpam0g-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v useradd >/dev/null 2>&1 || need+=(passwd)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
	echo "pam: cannot install ${need[*]} (needs root and apt-get); vmware-vix-helper builds without PAM" >&2
	exit 0
fi
apt-cache show libpam0g-dev >/dev/null 2>&1 || apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
