#!/usr/bin/env bash
# The package tests (packaging/*_test.go): lintian checks the .deb, rpmlint
# and rpm check the .rpm, and a throwaway Debian root receives the .deb.
# Installs lintian, rpmlint, rpm and mmdebstrap from apt, and builds the
# root once into .cache/pkgroot/root with mmdebstrap: bookworm, the minbase
# variant plus systemd, fuse3 and init-system-helpers (what the package
# depends on) and procps (/bin/kill, which every standard install has and
# the unit's ExecReload runs), from this machine's own apt sources, with a policy-rc.d that
# forbids starting services. The tests copy it; nothing runs in it but
# maintainer scripts and `vmtoolsd --version`. Idempotent; a no-op when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=.cache/pkgroot
ROOT=$CACHE/root
STAMP=$CACHE/ok
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "test-deps: the package tests need root and apt-get; they will be skipped" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in lintian rpmlint rpm mmdebstrap; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi
INCLUDE=systemd,fuse3,init-system-helpers,procps
if [ "$(cat "$STAMP" 2>/dev/null)" = "$INCLUDE" ] && [ -x "$ROOT/usr/bin/systemctl" ] && [ -x "$ROOT/usr/sbin/policy-rc.d" ]; then
	exit 0
fi
sources=
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
	[ -f "$f" ] && sources=$f && break
done
if [ -z "$sources" ]; then
	echo "test-deps: no apt sources on this machine; the package install test will be skipped" >&2
	exit 0
fi
rm -rf "$ROOT" "$STAMP"
mkdir -p "$CACHE"
start=$(date +%s)
mmdebstrap --quiet --mode=root --variant=minbase \
	--include="$INCLUDE" \
	--customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
	bookworm "$ROOT" "$sources"
# After mmdebstrap, whose cleanup removes any policy-rc.d.
printf '#!/bin/sh\n# govmtools package tests: never start a service in this root.\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
echo "$INCLUDE" >"$STAMP"
echo "test-deps: Debian root for the package tests in $ROOT ($(du -sh "$ROOT" | cut -f1), $(($(date +%s) - start)) s)"
