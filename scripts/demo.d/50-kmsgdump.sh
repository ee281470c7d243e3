# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): vmware-kmsgdump ships a
# panic record that pstore saved in the previous boot into vmware.log.
say "vmware-kmsgdump: last boot's panic, saved by pstore, into vmware.log"
mkdir -p "$DEMO/pstore" "$DEMO/crash"
cat >"$DEMO/pstore/dmesg-ramoops-0" <<'REC'
Panic#1 Part1
<1>[  812.331204] BUG: kernel NULL pointer dereference, address: 0000000000000008
<1>[  812.331260] #PF: supervisor read access in kernel mode
<4>[  812.331301] Oops: 0000 [#1] PREEMPT SMP NOPTI
<4>[  812.331345] CPU: 1 PID: 2231 Comm: kworker/1:0 Not tainted 6.1.0-13-amd64 #1 Debian 6.1.55-1
<4>[  812.331390] Hardware name: VMware, Inc. VMware Virtual Platform/440BX Desktop Reference Platform
<4>[  812.331433] RIP: 0010:demo_work_fn+0x12/0x40 [demo]
<0>[  812.332019] Kernel panic - not syncing: Fatal exception
REC
touch -d '2026-01-10 08:00:00 UTC' "$DEMO/pstore/dmesg-ramoops-0"
run vmware-kmsgdump --once --pstore "$DEMO/pstore" --crash-dir "$DEMO/crash" --state-dir "$DEMO/kmsgdump-state"
echo "vmware.log now has it:"
grep -E 'Guest: (kmsgdump:|<[0-9]+>\[)' "$DEMO/vmware.log" | tail -n 9
echo "and pstore is free for the next crash (the record is archived):"
run ls "$DEMO/pstore" "$DEMO/kmsgdump-state/archive"
