#!/usr/bin/env bash
# make demo: runs govmtools against the simulated VMX on this machine and
# shows what the host (and, once wired, vSphere) sees. Nothing here touches
# the real machine: everything talks to vmxsim over unix sockets.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$'; printf ' %q' "$@"; echo; "$@"; }
# wait_sim DIR PID [LOG]: wait until the vmxsim PID serves DIR (its
# ctl.sock, which the simulator opens last, exists); if PID exits or 10 s
# pass, show LOG and fail. Every demo part starts vmxsim through this.
wait_sim() {
	for _ in $(seq 200); do
		[ -S "$1/ctl.sock" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "${3:-}" ] && cat "$3"
	echo "vmxsim did not start in $1"
	return 1
}

say "build"
make -s build
export PATH="$PWD/bin:$PATH"

DEMO=$(mktemp -d /tmp/govmtools-demo.XXXXXX)
SIM_PID=
DEMO_PIDS= # background processes demo parts start
DEMO_ATEXIT= # shell commands demo parts need run at exit, even on failure (removing a demo user)
cleanup() {
	status=$?
	for pid in $DEMO_PIDS; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	eval "$DEMO_ATEXIT"
	if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2>/dev/null; then
		kill -TERM "$SIM_PID"; wait "$SIM_PID" || true
	fi
	rm -rf "$DEMO"
	exit $status
}
trap cleanup EXIT INT TERM

say "start the simulated VMX in $DEMO"
vmxsim serve --dir "$DEMO" >"$DEMO/vmxsim.out" 2>&1 &
SIM_PID=$!
wait_sim "$DEMO" "$SIM_PID" "$DEMO/vmxsim.out"
export GOVMTOOLS_RPC="unix:$DEMO"

say "vmware-checkvm and vmware-rpctool, as scripts and cloud-init use them"
run vmware-checkvm
run vmware-rpctool 'info-set guestinfo.demo.greeting hello from the guest'
run vmware-rpctool 'info-get guestinfo.demo.greeting'
run vmware-rpctool 'log govmtools demo: this line lands in vmware.log'
printf '$ vmware-rpctool info-get guestinfo.missing   # exits 1\n'
vmware-rpctool 'info-get guestinfo.missing' || echo "(exit $?)"

for part in scripts/demo.d/*.sh; do
	[ -e "$part" ] || continue
	# shellcheck source=/dev/null
	. "$part"
done

say "what the host sees: vmxsim ctl state"
run vmxsim ctl --dir "$DEMO" state

say "the tail of vmware.log"
tail -n 15 "$DEMO/vmware.log"

say "shut down"
kill -TERM "$SIM_PID"; wait "$SIM_PID" || true
SIM_PID=
ls "$DEMO"/*.sock >/dev/null 2>&1 && { echo "sockets left behind"; exit 1; }
echo "vmxsim stopped and removed its sockets. Demo done."
