// Package vixproto is the wire codec of VMware's guest operations (VIX
// relayed commands, docs/architecture.md section 10): the
// Vix_1_Relayed_Command framing on TCLO, the 51-byte request header, the
// credential block, the request bodies of the guest-operations opcodes,
// and the text replies ("<err> <addlErr> <payload>") with their
// XML-ish results. It is pure: no I/O, standard library only. Both the
// guest (vmtoolsd/vix) and the host (vmxsim/vsphere) use it; golden
// vectors in testdata pin it.
package vixproto

import "strconv"

// Message constants (vixCommands.h).
const (
	Magic          = 0xd00d0001
	Version        = 5
	HeaderLen      = 51 // VixCommandRequestHeader
	MsgHeaderLen   = 23 // VixMsgHeader
	AuthDataV1Len  = 44 // VixMsgAuthDataV1, after the credential with RequestIncludesAuthDataV1
	MaxRequestSize = 65536
	// MaxUserInput is the header+body cap the VMX applies before sending
	// (65536 - 5000); larger requests are refused with ErrArgumentTooBig.
	MaxUserInput = 60536
	// MaxReplyPayload is the most a guest reply may carry after
	// "<err> <addl> " (65536 less the 53 bytes the guest reserves).
	MaxReplyPayload = 65483
	// RelayedCommand is the TCLO command that carries a VIX request.
	RelayedCommand = "Vix_1_Relayed_Command"
	// GetToolsProperties is the TCLO command answering the tools'
	// property list.
	GetToolsProperties = "Vix_1_Get_ToolsProperties"
)

// Common flags (VixMsgHeader.commonFlags).
const (
	FlagRequest            = 0x01
	FlagGuestReturnsBinary = 0x80
)

// Request flags.
const (
	RequestIncludesAuthDataV1 = 0x10
	RequestEscapeXMLData      = 0x40
)

// Opcodes of the guest-operations API (vixCommands.h).
const (
	OpGetToolsState          = 62
	OpHgfsSendPacket         = 84
	OpListFiles              = 177
	OpCreateDirectoryEx      = 178
	OpMoveFileEx             = 179
	OpMoveDirectory          = 180
	OpCreateTempFileEx       = 181
	OpCreateTempDirectory    = 182
	OpSetFileAttributes      = 183
	OpStartProgram           = 185
	OpListProcessesEx        = 186
	OpReadEnvVariables       = 187
	OpInitiateTransferFrom   = 188
	OpInitiateTransferTo     = 189
	OpAcquireCredentials     = 190
	OpReleaseCredentials     = 191
	OpValidateCredentials    = 192
	OpTerminateProcess       = 193
	OpDeleteFileEx           = 194
	OpDeleteDirectoryEx      = 195
	OpWaitForTools           = 38
	OpCaptureScreen          = 58
	OpLegacyKillProcess      = 85
	OpLegacyRunProgram       = 4
	OpLegacyListProcesses    = 75
	OpLegacyListDirectory    = 79
	OpLegacyGetFileInfo      = 94
	OpLegacyCheckUserAccount = 78
)

// Credential types (VixCommandRequestHeader.userCredentialType).
const (
	CredNone                  = 0
	CredNamePassword          = 1
	CredAnonymous             = 2
	CredRoot                  = 3
	CredNamePasswordObfusc    = 4
	CredConsoleUser           = 5
	CredHostConfigSecret      = 6
	CredHostConfigHashed      = 7
	CredNamedInteractiveUser  = 8
	CredTicketedSession       = 9
	CredSSPI                  = 10
	CredSAMLBearerToken       = 11
	CredSAMLBearerHostVerifed = 12
)

// File attribute mask bits (VIX_FILE_ATTRIBUTE_SET_*), used by 183 and 189.
const (
	AttrSetAccessDate = 0x01
	AttrSetModifyDate = 0x02
	AttrSetReadOnly   = 0x04
	AttrSetHidden     = 0x08
	AttrSetUnixOwner  = 0x10
	AttrSetUnixGroup  = 0x20
	AttrSetUnixPerms  = 0x40
	// AttrWindowsOnly are the bits a Linux guest refuses (ErrInvalidArg).
	AttrWindowsOnly = AttrSetReadOnly | AttrSetHidden
)

// Error is a VIX error code (VixError: 64-bit; the base code is the low
// 16 bits).
type Error int64

// VIX error codes (vix.h, vixOpenSource.h).
const (
	OK                           Error = 0
	ErrFail                      Error = 1
	ErrOutOfMemory               Error = 2
	ErrInvalidArg                Error = 3
	ErrFileNotFound              Error = 4
	ErrObjectIsBusy              Error = 5
	ErrNotSupported              Error = 6
	ErrFileError                 Error = 7
	ErrDiskFull                  Error = 8
	ErrFileAlreadyExists         Error = 12
	ErrFileAccess                Error = 13
	ErrFileTooBig                Error = 21
	ErrFileNameInvalid           Error = 22
	ErrInvalidUTF8               Error = 27
	ErrAuthenticationFail        Error = 35
	ErrArgumentTooBig            Error = 44
	ErrOpNotSupportedOnGuest     Error = 3003
	ErrProgramNotStarted         Error = 3004
	ErrGuestUserPermissions      Error = 3015
	ErrToolsNotRunning           Error = 3016
	ErrUnrecognizedCommand       Error = 3025
	ErrTooManyLogons             Error = 3046
	ErrInvalidLoginCredentials   Error = 3050
	ErrNotAFile                  Error = 20001
	ErrNotADirectory             Error = 20002
	ErrNoSuchProcess             Error = 20003
	ErrFileNameTooLong           Error = 20004
	ErrOperationDisabled         Error = 20005
	ErrDirectoryNotEmpty         Error = 20006
	ErrInvalidMessageHeader      Error = 10000
	ErrInvalidMessageBody        Error = 10001
	ErrViOpNotSupportedOnGuest   Error = 3048
	ErrCannotAuthenticateInGuest Error = 3024
)

func (e Error) Error() string {
	if n := e.Name(); n != "" {
		return "vix error " + strconv.FormatInt(int64(e), 10) + " (" + n + ")"
	}
	return "vix error " + strconv.FormatInt(int64(e), 10)
}

// Name is the code's VIX_E_ name without the prefix, or "".
func (e Error) Name() string {
	switch e {
	case ErrFail:
		return "FAIL"
	case ErrOutOfMemory:
		return "OUT_OF_MEMORY"
	case ErrInvalidArg:
		return "INVALID_ARG"
	case ErrFileNotFound:
		return "FILE_NOT_FOUND"
	case ErrObjectIsBusy:
		return "OBJECT_IS_BUSY"
	case ErrNotSupported:
		return "NOT_SUPPORTED"
	case ErrFileError:
		return "FILE_ERROR"
	case ErrDiskFull:
		return "DISK_FULL"
	case ErrFileAlreadyExists:
		return "FILE_ALREADY_EXISTS"
	case ErrFileAccess:
		return "FILE_ACCESS_ERROR"
	case ErrFileTooBig:
		return "FILE_TOO_BIG"
	case ErrFileNameInvalid:
		return "FILE_NAME_INVALID"
	case ErrInvalidUTF8:
		return "INVALID_UTF8_STRING"
	case ErrAuthenticationFail:
		return "AUTHENTICATION_FAIL"
	case ErrArgumentTooBig:
		return "ARGUMENT_TOO_BIG"
	case ErrProgramNotStarted:
		return "PROGRAM_NOT_STARTED"
	case ErrGuestUserPermissions:
		return "GUEST_USER_PERMISSIONS"
	case ErrToolsNotRunning:
		return "TOOLS_NOT_RUNNING"
	case ErrUnrecognizedCommand:
		return "UNRECOGNIZED_COMMAND_IN_GUEST"
	case ErrInvalidLoginCredentials:
		return "INVALID_LOGIN_CREDENTIALS"
	case ErrNotAFile:
		return "NOT_A_FILE"
	case ErrNotADirectory:
		return "NOT_A_DIRECTORY"
	case ErrNoSuchProcess:
		return "NO_SUCH_PROCESS"
	case ErrFileNameTooLong:
		return "FILE_NAME_TOO_LONG"
	case ErrOperationDisabled:
		return "OPERATION_DISABLED"
	case ErrDirectoryNotEmpty:
		return "DIRECTORY_NOT_EMPTY"
	case ErrInvalidMessageHeader:
		return "INVALID_MESSAGE_HEADER"
	case ErrInvalidMessageBody:
		return "INVALID_MESSAGE_BODY"
	}
	return ""
}
