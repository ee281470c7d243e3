#!/usr/bin/env bash
# fuse3 provides mount.fuse3 and fusermount3, which the vmhgfs-fuse fstab
# test uses (mount(8) runs mount.fuse3, which runs vmhgfs-fuse).
set -euo pipefail
command -v mount.fuse3 >/dev/null && command -v fusermount3 >/dev/null && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "test-deps: fuse3 missing (apt-get install fuse3 as root)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q fuse3 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q fuse3 >/dev/null; }
