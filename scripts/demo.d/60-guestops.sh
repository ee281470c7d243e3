# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): vSphere guest
# operations through vmxsim's front end as a throwaway demo user (created
# here, removed at the end and by demo.sh's cleanup on any failure):
# govc guest.run, an upload and a download, and a wrong password
# refused. Needs root (useradd, PAM) and a cgo-built vmware-vix-helper.
say "guest operations: govc guest.run, upload, download as a demo user"
gops_skip=
if [ "$(id -u)" != 0 ]; then
	gops_skip="needs root to create the throwaway demo user and to check its password with PAM (run make demo as root)"
elif ! command -v useradd >/dev/null || ! command -v chpasswd >/dev/null || ! command -v userdel >/dev/null; then
	gops_skip="needs useradd, chpasswd and userdel (apt-get install passwd)"
elif ! ldd bin/vmware-vix-helper 2>/dev/null | grep -q libpam; then
	gops_skip="bin/vmware-vix-helper was built without cgo, so it refuses every login (needs a C compiler and libpam0g-dev: scripts/test-deps.d/50-pam.sh)"
fi
if [ -n "$gops_skip" ]; then
	echo "skipped: $gops_skip"
else
	GU="gvmdemo$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
	GP="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')-Ok"
	DEMO_ATEXIT="${DEMO_ATEXIT:-}userdel -r -f $GU >/dev/null 2>&1 || true;"
	useradd -m -s /bin/sh "$GU"
	printf '%s:%s\n' "$GU" "$GP" | chpasswd
	echo "created the demo user $GU (home /home/$GU)"

	GO="$DEMO/guestops"
	mkdir -p "$GO"
	vmxsim serve --dir "$GO" --vsphere 127.0.0.1:0 --ping-interval 200ms >"$GO/vmxsim.out" 2>&1 &
	GO_SIM=$!
	DEMO_PIDS="$DEMO_PIDS $GO_SIM"
	wait_sim "$GO" "$GO_SIM" "$GO/vmxsim.out"
	GOVMTOOLS_SIMULATED=1 vmtoolsd --rpc "unix:$GO" --conf-dir "$GO" --power-runner "record:$GO/power.record" >"$GO/vmtoolsd.out" 2>&1 &
	GO_TOOLS=$!
	DEMO_PIDS="$DEMO_PIDS $GO_TOOLS"
	for _ in $(seq 250); do vmxsim ctl --dir "$GO" state | grep -q '"versionType": "4"' && break; sleep 0.04; done
	[ -x "$DEMO/govc" ] || go build -o "$DEMO/govc" ./internal/govc
	gvc() { GOVC_URL=$(vmxsim ctl --dir "$GO" vsphere) GOVC_INSECURE=1 "$DEMO/govc" "$@"; }
	for _ in $(seq 100); do gvc guest.ls -vm govmtools-vm -l "$GU:$GP" "/home/$GU" >/dev/null 2>&1 && break; sleep 0.1; done

	printf '$ govc guest.run -vm govmtools-vm -l %s:*** /usr/bin/uname -a\n' "$GU"
	gvc guest.run -vm govmtools-vm -l "$GU:$GP" /usr/bin/uname -a
	printf '$ govc guest.run -vm govmtools-vm -l %s:*** /usr/bin/id\n' "$GU"
	gvc guest.run -vm govmtools-vm -l "$GU:$GP" /usr/bin/id

	printf 'hello from the host, %s\n' "$(date -u +%FT%TZ)" >"$GO/up.txt"
	printf '$ govc guest.upload -vm govmtools-vm -l %s:*** %s /home/%s/demo.txt\n' "$GU" "$GO/up.txt" "$GU"
	gvc guest.upload -vm govmtools-vm -l "$GU:$GP" "$GO/up.txt" "/home/$GU/demo.txt"
	ls -l "/home/$GU/demo.txt"
	printf '$ govc guest.download -vm govmtools-vm -l %s:*** /home/%s/demo.txt %s\n' "$GU" "$GU" "$GO/down.txt"
	gvc guest.download -vm govmtools-vm -l "$GU:$GP" "/home/$GU/demo.txt" "$GO/down.txt"
	if cmp -s "$GO/up.txt" "$GO/down.txt"; then
		echo "downloaded the same bytes: $(cat "$GO/down.txt")"
	else
		echo "the download differs from the upload"
		exit 1
	fi

	printf '$ govc guest.ls -vm govmtools-vm -l %s:wrong /home/%s   # a wrong password\n' "$GU" "$GU"
	if out=$(gvc guest.ls -vm govmtools-vm -l "$GU:wrong" "/home/$GU" 2>&1); then
		echo "a wrong password was accepted"
		exit 1
	fi
	echo "$out" | grep -o 'InvalidGuestLogin[^"]*' | head -n 1
	grep -h 'login failed' "$GO/vmtoolsd.out" | tail -n 1 || true

	kill -TERM "$GO_TOOLS"; wait "$GO_TOOLS" || true
	kill -TERM "$GO_SIM"; wait "$GO_SIM" || true
	userdel -r -f "$GU" >/dev/null 2>&1 || true
	echo "removed the demo user $GU"
fi
