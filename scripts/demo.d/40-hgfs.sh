# shellcheck shell=bash
# Shared folders: a demo share served by vmxsim, listed with
# vmware-hgfsclient, mounted with vmhgfs-fuse, used, and unmounted.
# Sourced by scripts/demo.sh (DEMO, SIM_PID, say, run are set there).

say "shared folders (HGFS)"
if [ "$(id -u)" != 0 ] || [ ! -e /dev/fuse ]; then
	echo "(skipped: mounting needs root and /dev/fuse)"
	return 0
fi
HGFS_SHARE="$DEMO/hgfs-share"
HGFS_MNT="$DEMO/hgfs-mnt"
mkdir -p "$HGFS_SHARE/docs" "$HGFS_MNT"
echo "hello from the host" >"$HGFS_SHARE/docs/readme.txt"
# A second simulator with a share: shares are given at start.
HGFS_SIM="$DEMO/hgfs-sim"
vmxsim serve --dir "$HGFS_SIM" --share "demo=$HGFS_SHARE" >"$DEMO/hgfs-sim.out" 2>&1 &
HGFS_SIM_PID=$!
wait_sim "$HGFS_SIM" "$HGFS_SIM_PID" "$DEMO/hgfs-sim.out"
hgfs_cleanup() {
	mountpoint -q "$HGFS_MNT" && { umount "$HGFS_MNT" || umount -l "$HGFS_MNT"; }
	kill -TERM "$HGFS_SIM_PID" 2>/dev/null && wait "$HGFS_SIM_PID" || true
}
run vmware-hgfsclient --rpc "unix:$HGFS_SIM"
run vmhgfs-fuse --rpc "unix:$HGFS_SIM" -o allow_other,umask=022 .host:/ "$HGFS_MNT" || { hgfs_cleanup; return 1; }
run ls -l "$HGFS_MNT" "$HGFS_MNT/demo/docs"
run cat "$HGFS_MNT/demo/docs/readme.txt"
run sh -c "echo 'written by the guest' > '$HGFS_MNT/demo/docs/from-guest.txt'"
run cat "$HGFS_SHARE/docs/from-guest.txt"
run vmxsim ctl --dir "$HGFS_SIM" share disable demo
run ls "$HGFS_MNT"
run vmxsim ctl --dir "$HGFS_SIM" share enable demo
run ls "$HGFS_MNT/demo/docs"
run findmnt --mountpoint "$HGFS_MNT"
run umount "$HGFS_MNT"
hgfs_cleanup
echo "unmounted; the share's directory keeps what the guest wrote."
