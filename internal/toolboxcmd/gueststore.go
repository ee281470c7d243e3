package toolboxcmd

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// guestStorePipe is the socket of vmtoolsd's GuestStore plugin.
const guestStorePipe = "/var/run/vmware/guestStorePipe"

// GuestStore client library errors (exit codes of `gueststore
// getcontent`) and their texts.
var guestStoreErrors = []string{
	0: "Success", 1: "Generic error", 2: "TLS error", 3: "Not initialized",
	4: "Invalid parameter", 5: "Not enough memory", 6: "Create output file error",
	7: "Write output file error", 8: "Connect generic error", 9: "Connect service not running",
	10: "Connect permission denied", 11: "Connect security violation", 12: "Connect peer reset",
	13: "Send error", 14: "Receive error", 15: "Content forbidden", 16: "Content not found",
	17: "Server error", 18: "Cancelled", 19: "Checksum error",
}

// guestStoreConnect reaches the GuestStore plugin's socket and returns the
// client library's error number: govmtools' vmtoolsd has no GuestStore
// plugin, so on a govmtools VM the socket is never there and this is
// always a connect error, as open-vm-tools' client reports it. Where
// something else serves the socket, govmtools does not speak its
// protocol: that is a generic error (docs/toolbox-cmd.md).
func (r *run) guestStoreConnect() int {
	path := r.GuestStorePipe
	if path == "" {
		path = guestStorePipe
	}
	c, err := net.Dial("unix", path)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return 9
	case errors.Is(err, syscall.EACCES):
		return 10
	case err != nil:
		return 8
	}
	c.Close()
	return 1
}

// gueststore is `gueststore getcontent RESOURCE FILE`.
func (r *run) gueststore() int {
	if r.args[1] != "getcontent" {
		return r.unknown("subcommand", r.args[1])
	}
	if len(r.args) != 4 {
		return ExUsage
	}
	code := r.guestStoreConnect()
	r.printErr("'%s' failed, GuestStore client library error: %s.\n", r.args[1], guestStoreErrors[code])
	return code
}

// globalconf is `globalconf status|enable|disable|refresh`: the switch of
// the global configuration (tools-global.conf, downloaded from the
// GuestStore), [globalconf] enabled in tools.conf.
func (r *run) globalconf() int {
	sub := r.args[1]
	k, _ := r.loadConf()
	enabled := k.parsed().Bool("globalconf", "enabled", false)
	switch sub {
	case "refresh":
		if !enabled {
			r.printErr("'%s' failed, since globalconf module is disabled.\n", sub)
			return ExSoftware
		}
		r.printErr("'%s' failed, GuestStore client library error: %s.\n", sub, guestStoreErrors[r.guestStoreConnect()])
		return ExSoftware
	case "status":
		r.print("The status of globalconf module is '%s'\n", enabledText(enabled))
		return ExitOK
	case "enable", "disable":
	default:
		return r.unknown("subcommand", sub)
	}
	want := sub == "enable"
	if want == enabled {
		return ExitOK
	}
	k.set("globalconf", "enabled", map[bool]string{true: "true", false: "false"}[want])
	r.print("%s: Updating the Configuration.\n", sub)
	if err := r.writeConf(k); err != nil {
		r.printErr("'%s' failed, check %s log for more information.\n", sub, r.prog)
		return ExTempFail
	}
	if !want {
		os.Remove(filepath.Join(r.ConfDir, "tools-global.conf"))
	}
	return ExitOK
}
