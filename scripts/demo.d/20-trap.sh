# shellcheck shell=bash
# Part of make demo (sourced by scripts/demo.sh): the backdoor path, for
# real, under the ptrace trap. Linux/amd64 only.
if [ "$(uname -m)" = x86_64 ] && [ "$(uname -s)" = Linux ]; then
	say "the real backdoor path: vmxsim run traps the I/O-port instructions"
	TRAP="$DEMO/trap"
	run vmxsim run --dir "$TRAP" -- sh -c '
		vmware-rpctool "info-set guestinfo.demo.backdoor set over the backdoor" &&
		vmware-rpctool "info-get guestinfo.demo.backdoor" &&
		vmware-checkvm &&
		vmxsim ctl --dir "$VMXSIM_DIR" state | grep -A8 "\"backdoor\""'
	printf '$ vmxsim run --lb -- vmware-rpctool "info-get guestinfo.nothing"   # the low-bandwidth path; exits 1\n'
	vmxsim run --lb -- vmware-rpctool "info-get guestinfo.nothing" || echo "(exit $?)"
	if [ -f .cache/peer/ok ]; then
		PEER=$PWD/.cache/peer/root
		say "Debian's open-vm-tools against the same simulated VMX"
		run vmxsim run -- env LD_LIBRARY_PATH="$PEER/usr/lib/x86_64-linux-gnu" sh -c "
			$PEER/usr/bin/vmware-checkvm &&
			$PEER/usr/bin/vmware-rpctool 'info-set guestinfo.demo.peer from Debian' &&
			vmware-rpctool 'info-get guestinfo.demo.peer'"
	fi
fi
