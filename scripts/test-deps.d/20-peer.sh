#!/usr/bin/env bash
# The peer tier: Debian's open-vm-tools, unpacked (never installed: no
# services, no units, nothing under /usr) into .cache/peer/root of the
# repository, plus the few shared libraries its binaries need from apt.
# Tests find it with testutil.Peer. Idempotent; a no-op when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=.cache/peer
ROOT=$CACHE/root
STAMP=$CACHE/ok
# Libraries the peer's binaries and plugins link that a minimal Debian
# lacks (checked with ldd after unpacking).
LIBS=(libfuse3-3 libmspack0)

if [ -f "$STAMP" ] && [ -x "$ROOT/usr/bin/vmtoolsd" ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
	echo "peer: apt-get/dpkg not available; the peer tier will be skipped" >&2
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "peer: needs root for apt-get install ${LIBS[*]}; the peer tier will be skipped" >&2
	exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
	echo "peer: the trap runs on amd64 only; skipping" >&2
	exit 0
fi
mkdir -p "$CACHE"
if ! apt-cache show open-vm-tools >/dev/null 2>&1; then
	apt-get update -qq
fi
missing=()
for l in "${LIBS[@]}"; do
	dpkg -s "$l" >/dev/null 2>&1 || missing+=("$l")
done
if [ ${#missing[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rm -rf "$ROOT" "$CACHE"/*.deb
# apt's download sandbox user cannot write here; fetch in a temp dir.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq open-vm-tools 2>/dev/null)
deb=$(ls "$tmp"/open-vm-tools_*.deb)
mv "$deb" "$CACHE/"
dpkg -x "$CACHE/$(basename "$deb")" "$ROOT"
lib="$ROOT/usr/lib/x86_64-linux-gnu"
if LD_LIBRARY_PATH="$lib" find "$ROOT/usr/bin" "$lib" -type f \( -perm -u+x -o -name '*.so*' \) -exec ldd {} + 2>/dev/null | grep -q 'not found'; then
	echo "peer: unresolved libraries:" >&2
	LD_LIBRARY_PATH="$lib" find "$ROOT/usr/bin" "$lib" -type f \( -perm -u+x -o -name '*.so*' \) -exec ldd {} + 2>/dev/null | grep 'not found' | sort -u >&2
	exit 1
fi
dpkg-deb -f "$CACHE/$(basename "$deb")" Version >"$CACHE/version"
touch "$STAMP"
echo "peer: open-vm-tools $(cat "$CACHE/version") unpacked in $ROOT"
