# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): vmtoolsd over the real
# backdoor path under the ptrace trap, PID 1 of a namespace of its own; the
# host clock runs 90 s ahead, so Time_Synchronize has something to do (the
# clock is only logged, never set), and halt goes to the record runner.
# Linux/amd64 and root (unshare) only.
if [ "$(uname -m)" = x86_64 ] && [ "$(uname -s)" = Linux ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	say "vmtoolsd over the backdoor: vmxsim run -- unshare --pid ... vmtoolsd"
	VT="$DEMO/vmtoolsd-trap"
	mkdir -p "$VT"
	printf '$ vmxsim run --dir %s --clock-offset 90s -- unshare --pid --fork --mount-proc --kill-child vmtoolsd --conf-dir %s --power-runner record:%s/power.record &\n' "$VT" "$VT" "$VT"
	vmxsim run --dir "$VT" --clock-offset 90s -- unshare --pid --fork --mount-proc --kill-child \
		vmtoolsd --conf-dir "$VT" --power-runner "record:$VT/power.record" >"$VT/out" 2>&1 &
	VT_RUN=$!
	DEMO_PIDS="$DEMO_PIDS $VT_RUN"
	wait_sim "$VT" "$VT_RUN" "$VT/out"
	for _ in $(seq 200); do
		vmxsim ctl --dir "$VT" state | grep -q '"versionType": "4"' && break
		sleep 0.05
	done
	vmxsim ctl --dir "$VT" state | sed -n '/"tools"/,/"capabilities"/p'
	run vmxsim ctl --dir "$VT" tclo 'Time_Synchronize 0'
	grep 'guest clock' "$VT/out" | tail -n 1
	run vmxsim ctl --dir "$VT" power halt
	run cat "$VT/power.record"
	# unshare does not forward signals: stop vmtoolsd itself.
	VT_UNSHARE=$(pgrep -P "$VT_RUN" || true)
	VT_TOOLS=$( [ -n "$VT_UNSHARE" ] && pgrep -P "$VT_UNSHARE" || true)
	[ -n "$VT_TOOLS" ] && kill -TERM "$VT_TOOLS"
	wait "$VT_RUN" || true
fi
