// Package systemd holds govmtools' systemd integration: the unit files
// shipped beside the binaries (one file per unit, installed to
// /usr/lib/systemd/system, checked by tests that run systemd-analyze
// verify on them) and, for the daemons, readiness and watchdog helpers.
package systemd
