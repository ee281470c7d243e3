// Package version holds the govmtools release version, which every binary
// prints for --version and vmtoolsd reports to the VMX
// (guestinfo.vmtools.description). The Makefile sets it at link time from
// `git describe` with
//
//	-ldflags "-X github.com/govmtools/govmtools/internal/version.version=..."
//
// A binary built without it (go build, go install, the test suite's
// builds) falls back to the VCS revision Go stamps into it, in the same
// shape `git describe --always --dirty` gives for an untagged commit, or
// to the module version, or to "devel".
package version

import (
	"runtime/debug"
	"sync"
)

// version is set by the linker; "" means "work it out from the build info".
var version string

var fallback = sync.OnceValue(func() string { return fromBuildInfo(debug.ReadBuildInfo()) })

// String returns the govmtools version.
func String() string {
	if version != "" {
		return version
	}
	return fallback()
}

// fromBuildInfo is the version of a binary built without -X: the short VCS
// revision (with "-dirty" for a modified tree), else the main module's
// version, else "devel".
func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "devel"
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		if len(rev) > 7 {
			rev = rev[:7]
		}
		if dirty {
			rev += "-dirty"
		}
		return rev
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "devel"
}
