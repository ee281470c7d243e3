#!/usr/bin/env bash
# e2fsprogs (mkfs.ext4) and mount/losetup: the vmbackup tests freeze an
# ext4 file system they make themselves on a loop device.
set -euo pipefail
command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "test-deps: mkfs.ext4/losetup missing (apt-get install e2fsprogs mount as root)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q e2fsprogs mount >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q e2fsprogs mount >/dev/null; }
