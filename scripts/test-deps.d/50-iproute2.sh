#!/usr/bin/env bash
# Guest info tests build network namespaces with iproute2's ip.
set -euo pipefail
command -v ip >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: iproute2 missing; the guest info namespace tests will skip (install it as root)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q iproute2 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q iproute2 >/dev/null; }
