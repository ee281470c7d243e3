// Package version holds the govmtools release version, which binaries print
// and vmtoolsd reports to the VMX (guestinfo.vmtools.description). It is
// set at link time with -ldflags "-X .../internal/version.Version=...".
package version

// Version is the govmtools version.
var Version = "0.1.0-dev"
