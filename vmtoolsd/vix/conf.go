package vix

import (
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Group is the tools.conf group of the guest-operations switches.
const Group = "guestoperations"

// AllDisabled is the switch that disables every guest operation but
// GetToolsState; "<API>.disabled" (the vSphere method's name) disables
// one API. The switches are read at every request, so a tools.conf
// reload applies at once.
const AllDisabled = "disabled"

// apiNames are the vSphere method names open-vm-tools uses as
// tools.conf keys, by opcode (each legacy opcode shares its VI-era
// twin's switch). An opcode not listed obeys only AllDisabled.
var apiNames = map[uint32]string{
	vixproto.OpStartProgram:         "StartProgramInGuest",
	vixproto.OpListProcessesEx:      "ListProcessesInGuest",
	vixproto.OpLegacyListProcesses:  "ListProcessesInGuest",
	vixproto.OpTerminateProcess:     "TerminateProcessInGuest",
	vixproto.OpLegacyKillProcess:    "TerminateProcessInGuest",
	vixproto.OpReadEnvVariables:     "ReadEnvironmentVariableInGuest",
	vixproto.OpCreateDirectoryEx:    "MakeDirectoryInGuest",
	vixproto.OpDeleteFileEx:         "DeleteFileInGuest",
	vixproto.OpDeleteDirectoryEx:    "DeleteDirectoryInGuest",
	vixproto.OpMoveDirectory:        "MoveDirectoryInGuest",
	vixproto.OpMoveFileEx:           "MoveFileInGuest",
	vixproto.OpCreateTempFileEx:     "CreateTemporaryFileInGuest",
	vixproto.OpCreateTempDirectory:  "CreateTemporaryDirectoryInGuest",
	vixproto.OpListFiles:            "ListFilesInGuest",
	vixproto.OpSetFileAttributes:    "ChangeFileAttributesInGuest",
	vixproto.OpInitiateTransferFrom: "InitiateFileTransferFromGuest",
	vixproto.OpInitiateTransferTo:   "InitiateFileTransferToGuest",
	vixproto.OpValidateCredentials:  "ValidateCredentialsInGuest",
	vixproto.OpAcquireCredentials:   "AcquireCredentialsInGuest",
	vixproto.OpReleaseCredentials:   "ReleaseCredentialsInGuest",
}

// enabledProps are the tools properties 4540..4568 (*_ENABLED) and the
// API each reports. open-vm-tools fills each with the API's "disabled"
// flag (so an enabled API reads false); govmtools keeps that quirk, as
// clients read it.
var enabledProps = []string{
	"StartProgramInGuest", "ListProcessesInGuest", "TerminateProcessInGuest", "ReadEnvironmentVariableInGuest",
	"ValidateCredentialsInGuest", "AcquireCredentialsInGuest", "ReleaseCredentialsInGuest", "MakeDirectoryInGuest",
	"DeleteFileInGuest", "DeleteDirectoryInGuest", "MoveDirectoryInGuest", "MoveFileInGuest",
	"CreateTemporaryFileInGuest", "CreateTemporaryDirectoryInGuest", "ListFilesInGuest", "ChangeFileAttributesInGuest",
	"InitiateFileTransferFromGuest", "InitiateFileTransferToGuest", "AddGuestAlias", "RemoveGuestAlias",
	"ListGuestAliases", "ListGuestMappedAliases", "CreateRegistryKeyInGuest", "ListRegistryKeysInGuest",
	"DeleteRegistryKeyInGuest", "SetRegistryValueInGuest", "ListRegistryValuesInGuest", "DeleteRegistryValueInGuest",
	"RemoveGuestAliasByCert",
}

// Schema lists the [guestoperations] keys vmtoolsd honours (and
// useVGAuth, which it accepts: govmtools has no VGAuth, so PAM is always
// used).
func Schema() toolsconf.Schema {
	keys := map[string]toolsconf.Kind{AllDisabled: toolsconf.Bool, "useVGAuth": toolsconf.Bool}
	for _, n := range enabledProps {
		keys[n+".disabled"] = toolsconf.Bool
	}
	return toolsconf.Schema{Group: keys}
}

// apiDisabled is open-vm-tools' rule: the global switch wins; else the
// API's own (api "" has none).
func apiDisabled(f *toolsconf.File, api string) bool {
	if f.Bool(Group, AllDisabled, false) {
		return true
	}
	return api != "" && f.Bool(Group, api+".disabled", false)
}

// disabled says whether tools.conf disables op; GetToolsState is never
// disabled.
func (s *Service) disabled(op uint32) bool {
	if op == vixproto.OpGetToolsState || s.Conf == nil {
		return false
	}
	return apiDisabled(s.Conf(), apiNames[op])
}
