package vmtoolsd

import (
	"fmt"

	"github.com/govmtools/govmtools/internal/version"
)

// Version is a tools version as the VMX knows it: major.minor.base, and
// the build number.
type Version struct {
	Major, Minor, Base int
	Build              int
}

// DefaultVersion is the open-vm-tools version govmtools claims: 12.2.0,
// TOOLS_VERSION_UINT 12352.
//
// Why this one: it is the version of Debian bookworm's open-vm-tools,
// the peer implementation vmxsim and our binaries are held against, so
// the reset/Capabilities_Register exchange can be compared with its
// golden vectors byte for byte; vSphere 7 and 8 treat it as a current,
// supported open-vm-tools (type OVT shows as "Guest Managed", so no
// upgrade is ever offered); and it is not so new that the VMX would
// expect plugins govmtools does not have (a high version may make the
// VMX offer guest operations or customization). Features the VMX gates on are negotiated by capabilities, not by
// this number.
func DefaultVersion() Version { return Version{Major: 12, Minor: 2, Base: 0} }

// VersionUnmanaged is TOOLS_VERSION_UNMANAGED.
const VersionUnmanaged = 0x7fffffff

// TypeOpenVMTools is TOOLS_TYPE_OVT, vSphere's guestToolsTypeOpenVMTools.
const TypeOpenVMTools = 4

// Uint is TOOLS_VERSION_UINT: major<<10 + minor<<5 + base.
func (v Version) Uint() uint32 {
	return uint32(v.Major)<<10 | uint32(v.Minor)<<5 | uint32(v.Base)
}

// String is "major.minor.base".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Base) }

// Description names govmtools and its own version beside the claimed
// tools version (guestinfo.vmtools.description, and the version line in
// vmware.log).
func (v Version) Description() string {
	return fmt.Sprintf("govmtools %s (open-vm-tools %s compatible)", version.String(), v)
}
