#!/usr/bin/env bash
# kmsgdump tests: systemd-analyze checks vmware-kmsgdump.service.
set -euo pipefail
command -v systemd-analyze >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "test-deps: systemd-analyze missing (apt-get install systemd, as root)" >&2
	exit 0
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
