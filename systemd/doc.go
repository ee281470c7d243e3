// Package systemd holds govmtools' systemd integration: the unit files
// shipped beside the binaries (checked by tests that parse them) and,
// for the daemons, readiness and watchdog helpers.
package systemd
