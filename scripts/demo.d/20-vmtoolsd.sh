# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): vmtoolsd against a
# simulated VMX with the vSphere front end, and what a vSphere client
# (govc, built from govmomi's cli packages) sees. Power operations go to
# the record runner: nothing here powers anything off.

say "vmtoolsd: the tools service vSphere talks to"
VS="$DEMO/vsphere"
mkdir -p "$VS"
vmxsim serve --dir "$VS" --vsphere 127.0.0.1:0 --ping-interval 500ms >"$VS/vmxsim.out" 2>&1 &
DEMO_PIDS="$DEMO_PIDS $!"
VS_SIM=$!
wait_sim "$VS" "$VS_SIM" "$VS/vmxsim.out"
go build -o "$DEMO/govc" ./internal/govc
export GOVC_URL GOVC_INSECURE=1
GOVC_URL=$(vmxsim ctl --dir "$VS" vsphere)
run vmxsim ctl --dir "$VS" vsphere

say "a vSphere client before the tools start"
run "$DEMO/govc" object.collect -s vm/govmtools-vm guest.toolsRunningStatus guestHeartbeatStatus

GOVMTOOLS_SIMULATED=1 vmtoolsd --rpc "unix:$VS" --conf-dir "$VS" --power-runner "record:$VS/power.record" >"$VS/vmtoolsd.out" 2>&1 &
VMTOOLSD=$!
DEMO_PIDS="$DEMO_PIDS $VMTOOLSD"
printf '$ vmtoolsd --rpc unix:%s --power-runner record:%s/power.record &\n' "$VS" "$VS"
for _ in $(seq 100); do vmxsim ctl --dir "$VS" state | grep -q '"versionType": "4"' && break; sleep 0.02; done
sleep 0.5 # one mirror round

say "what vSphere shows now"
run "$DEMO/govc" vm.info govmtools-vm
run "$DEMO/govc" object.collect -s vm/govmtools-vm guest.toolsRunningStatus guest.toolsVersion guest.toolsVersionStatus2 guest.toolsInstallType guestHeartbeatStatus
printf '$ vmxsim ctl --dir %s state   # tools and capabilities\n' "$VS"
vmxsim ctl --dir "$VS" state | sed -n '/"tools"/,/"guest"/p'

say "Shut Down Guest from vSphere (the guest's runner only records it)"
run "$DEMO/govc" vm.power -s govmtools-vm
sleep 0.3
run cat "$VS/power.record"
vmxsim ctl --dir "$VS" state | sed -n '/"power"/,/}/p'
grep 'Guest:' "$VS/vmware.log" | tail -n 3

say "the guest goes down: vmtoolsd stops, the VMX powers the VM off"
kill -TERM "$VMTOOLSD"; wait "$VMTOOLSD" || true
sleep 0.6
run "$DEMO/govc" object.collect -s vm/govmtools-vm runtime.powerState guest.toolsRunningStatus guestHeartbeatStatus

kill -TERM "$VS_SIM"; wait "$VS_SIM" || true
