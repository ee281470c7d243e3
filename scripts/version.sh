#!/bin/sh
# The version of a build: git describe of the last v* tag (v1.2.3-4-gabc
# becomes 1.2.3+4.gabc, which sorts after 1.2.3 in dpkg and rpm), or,
# before the first tag, 0.1.0-dev.<commits>+g<hash> (before 0.1.0);
# ".dirty" marks uncommitted changes.
# Makefile passes it as VERSION to -ldflags and to the packages.
cd "$(dirname "$0")/.." || exit 1
if d=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
	d=${d#v}
	# 1.2.3-4-gabc[-dirty] -> 1.2.3+4.gabc[.dirty]; 1.2.3-dirty -> 1.2.3+dirty
	echo "$d" | sed -E 's/-([0-9]+)-g([0-9a-f]+)/+\1.g\2/; s/-dirty$/.dirty/; s/^([^+]*)\.dirty$/\1+dirty/'
	exit 0
fi
n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
h=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
git diff --quiet HEAD 2>/dev/null || dirty=.dirty
echo "0.1.0-dev.$n+g$h$dirty"
