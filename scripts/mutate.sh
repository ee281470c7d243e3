#!/usr/bin/env bash
# make mutate: mutation testing (go-gremlins) of the packages where a
# silent bug costs users most, one package at a time, then the report
# docs/mutation.md (internal/cmd/mutreport). Slow (minutes per package
# on 2 cores): not part of make test; run it when these packages change.
#
#   scripts/mutate.sh                 every package below
#   scripts/mutate.sh datamap kmsg    the entries whose name is given
#
# gremlins is installed, pinned, into .cache/bin by `go install`; results
# of each package land in .cache/mutate/<name>.json and the report is
# written from every result there, so packages can be run separately.
# MUTATE_OUT=DIR keeps the results in DIR instead (a worktree of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
GREMLINS_VERSION=v0.6.0
# Per mutant, the package's tests may run this many times as long as
# they do unmutated (a loaded 2-CPU machine is slow and uneven: at 8,
# kmsgdump's journal had 20 mutants time out that were mostly slow runs,
# which can hide survivors).
COEFF=${MUTATE_TIMEOUT_COEFFICIENT:-30}
WORKERS=${MUTATE_WORKERS:-2}
# On a shared machine, MUTATE_LOCK=FILE runs each package under flock FILE.
lock=()
if [ -n "${MUTATE_LOCK:-}" ]; then lock=(flock "$MUTATE_LOCK"); fi

# name  package  files mutated (a regexp of file names; tests and
# subpackages are never mutated)
PACKAGES=(
	"datamap       ./rpc/datamap          .*"
	"hgfsproto     ./hgfs/hgfsproto       .*"
	"infoproto     ./guestinfo/infoproto  .*"
	"kmsg          ./kmsgdump/kmsg        .*"
	"rpc           ./rpc                  ^(mux|client)\.go$"
	"hgfs          ./hgfs                 ^(errors|client)\.go$"
	"backdoor      ./rpc/backdoor         ^message\.go$"
	"journal       ./kmsgdump             ^(store|ship)\.go$"
	"power         ./vmtoolsd/power       ^power\.go$"
	"timesync      ./vmtoolsd/timesync    ^timesync\.go$"
	"toolsconf     ./vmtoolsd/toolsconf   ^toolsconf\.go$"
)

bin=$PWD/.cache/bin
if ! "$bin/gremlins" --version >/dev/null 2>&1; then
	GOBIN=$bin go install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
fi
out=${MUTATE_OUT:-.cache/mutate}
mkdir -p "$out"

wanted() {
	local w
	for w in "${SELECTED[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}
SELECTED=("$@")
for entry in "${PACKAGES[@]}"; do
	read -r name pkg files <<<"$entry"
	[ ${#SELECTED[@]} -eq 0 ] || wanted "$name" || continue
	# gremlins takes only excludes: every non-test file not matching.
	excl=(-E '/')
	for f in "$pkg"/*.go; do
		b=$(basename "$f")
		case $b in *_test.go) continue ;; esac
		if ! [[ $b =~ $files ]]; then excl+=(-E "^${b//./\\.}\$"); fi
	done
	echo "== $name ($pkg, files $files)"
	start=$(date +%s)
	"${lock[@]}" "$bin/gremlins" unleash --workers "$WORKERS" --timeout-coefficient "$COEFF" \
		"${excl[@]}" -o "$out/$name.json" "$pkg" >"$out/$name.log" 2>&1 || {
		echo "gremlins failed for $name; see $out/$name.log" >&2
		exit 1
	}
	echo "$name $pkg $files $(($(date +%s) - start)) $COEFF" >"$out/$name.meta"
	tail -n 6 "$out/$name.log"
done
go run ./internal/cmd/mutreport -dir "$out" -explain docs/mutation-equivalent.txt >docs/mutation.md
echo "wrote docs/mutation.md"
