// Package systemd holds the systemd unit files of govmtools (one file per
// unit, installed to /usr/lib/systemd/system) and the tests that check
// them with systemd-analyze. Mains talk to systemd (sd_notify) themselves,
// through github.com/coreos/go-systemd/v22/daemon.
package systemd
