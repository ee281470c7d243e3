#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 10s).
# Seeds live in each package's testdata/; new crashers land in
# testdata/fuzz/<Target>/ and become regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-10s}
status=0
while IFS=: read -r file fn; do
	pkg=./$(dirname "$file")
	name=${fn#func }
	name=${name%%(*}
	echo "== $pkg $name ($t)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg" || status=1
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(' . | sed 's|^\./||')
exit $status
