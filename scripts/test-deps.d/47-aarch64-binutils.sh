#!/usr/bin/env bash
# rpc/backdoor's TestArm64BackdoorDisassembly disassembles the arm64
# backdoor with GNU binutils for aarch64 (Debian's
# binutils-aarch64-linux-gnu), a decoder independent of Go's.
set -euo pipefail
command -v aarch64-linux-gnu-objdump >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "test-deps: aarch64-linux-gnu-objdump missing (apt-get install binutils-aarch64-linux-gnu as root)" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q binutils-aarch64-linux-gnu >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q binutils-aarch64-linux-gnu >/dev/null; }
