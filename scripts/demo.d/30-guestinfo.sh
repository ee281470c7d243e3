# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): guest info from vmtoolsd
# in a network namespace built like a container host (eth0 a veth with a
# VMware MAC, a /32 VIP, IPv6; docker0 and cni0 bridges), as the host and a
# vSphere client see it. Only documentation addresses; the namespaces are
# deleted at the end. Needs root and iproute2; skipped otherwise.

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	say "guest info: skipped (needs root and iproute2 for a network namespace)"
else
	say "guest info: vmtoolsd in a network namespace built like a container host"
	GI="$DEMO/guestinfo"
	GI_NS="govmtools-demo-$$"
	mkdir -p "$GI"
	gi_cleanup() {
		ip netns del "$GI_NS-vm" 2>/dev/null || true
		ip netns del "$GI_NS-peer" 2>/dev/null || true
		rm -rf "/etc/netns/$GI_NS-vm"
	}
	trap 'gi_cleanup; cleanup' EXIT INT TERM
	ip netns add "$GI_NS-vm"
	ip netns add "$GI_NS-peer"
	mkdir -p "/etc/netns/$GI_NS-vm"
	printf 'nameserver 198.51.100.53\nsearch example.test\n' >"/etc/netns/$GI_NS-vm/resolv.conf"
	ip -n "$GI_NS-vm" -batch - <<-EOF
		link set lo up
		link add eth0 type veth peer name up0 netns $GI_NS-peer
		link set eth0 address 00:50:56:aa:bb:01
		addr add 198.51.100.10/24 dev eth0
		addr add 198.51.100.200/32 dev eth0
		addr add 2001:db8::10/64 dev eth0 nodad
		link set eth0 up
		route add default via 198.51.100.1 dev eth0
		link add docker0 type bridge
		addr add 203.0.113.1/24 dev docker0
		link set docker0 up
		link add cni0 type bridge
		addr add 192.0.2.1/24 dev cni0
		link set cni0 up
	EOF
	ip -n "$GI_NS-peer" link set up0 up
	run ip -n "$GI_NS-vm" -brief address

	vmxsim serve --dir "$GI" --vsphere 127.0.0.1:0 --vm-nic 00:50:56:aa:bb:01 >"$GI/vmxsim.out" 2>&1 &
	GI_SIM=$!
	DEMO_PIDS="$DEMO_PIDS $GI_SIM"
	wait_sim "$GI" "$GI_SIM" "$GI/vmxsim.out"
	GOVMTOOLS_SIMULATED=1 ip netns exec "$GI_NS-vm" "$PWD/bin/vmtoolsd" --rpc "unix:$GI" --conf-dir "$GI" \
		--power-runner "record:$GI/power.record" >"$GI/vmtoolsd.out" 2>&1 &
	GI_TOOLS=$!
	DEMO_PIDS="$DEMO_PIDS $GI_TOOLS"
	printf '$ ip netns exec %s vmtoolsd --rpc unix:%s ... &\n' "$GI_NS-vm" "$GI"
	for _ in $(seq 100); do vmxsim ctl --dir "$GI" state | grep -q '"ipAddress"' && break; sleep 0.05; done
	printf '$ vmxsim ctl --dir %s state   # the guest section: eth0 only, no bridge\n' "$GI"
	vmxsim ctl --dir "$GI" state | sed -n '/"guest": {/,/"osFullName"/p'

	say "an address added in the guest reaches the host at once (netlink, no 30 s poll)"
	start=$(date +%s%N)
	run ip -n "$GI_NS-vm" address add 198.51.100.11/24 dev eth0
	for _ in $(seq 500); do vmxsim ctl --dir "$GI" state | grep -q '198.51.100.11/24' && break; sleep 0.01; done
	echo "shown in ctl state after $((($(date +%s%N) - start) / 1000000)) ms"

	say "what a vSphere client sees"
	[ -x "$DEMO/govc" ] || go build -o "$DEMO/govc" ./internal/govc
	GOVC_URL=$(vmxsim ctl --dir "$GI" vsphere) GOVC_INSECURE=1
	export GOVC_URL GOVC_INSECURE
	run "$DEMO/govc" vm.ip -wait 10s govmtools-vm
	run "$DEMO/govc" vm.ip -a -wait 10s govmtools-vm
	run "$DEMO/govc" object.collect -s vm/govmtools-vm guest.hostName guest.guestId guest.guestFullName

	kill -TERM "$GI_TOOLS"; wait "$GI_TOOLS" || true
	kill -TERM "$GI_SIM"; wait "$GI_SIM" || true
	gi_cleanup
	trap cleanup EXIT INT TERM
fi
