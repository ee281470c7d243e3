package hgfsproto

import "strconv"

// Op is an HGFS operation code (HgfsOp), 4 bytes on the wire.
type Op uint32

// Operation codes.
const (
	OpOpen               Op = 0
	OpRead               Op = 1
	OpWrite              Op = 2
	OpClose              Op = 3
	OpSearchOpen         Op = 4
	OpSearchRead         Op = 5
	OpSearchClose        Op = 6
	OpGetattr            Op = 7
	OpSetattr            Op = 8
	OpCreateDir          Op = 9
	OpDeleteFile         Op = 10
	OpDeleteDir          Op = 11
	OpRename             Op = 12
	OpQueryVolumeInfo    Op = 13
	OpOpenV2             Op = 14
	OpGetattrV2          Op = 15
	OpSetattrV2          Op = 16
	OpSearchReadV2       Op = 17
	OpCreateSymlink      Op = 18
	OpServerLockChange   Op = 19
	OpCreateDirV2        Op = 20
	OpDeleteFileV2       Op = 21
	OpDeleteDirV2        Op = 22
	OpRenameV2           Op = 23
	OpOpenV3             Op = 24
	OpReadV3             Op = 25
	OpWriteV3            Op = 26
	OpCloseV3            Op = 27
	OpSearchOpenV3       Op = 28
	OpSearchReadV3       Op = 29
	OpSearchCloseV3      Op = 30
	OpGetattrV3          Op = 31
	OpSetattrV3          Op = 32
	OpCreateDirV3        Op = 33
	OpDeleteFileV3       Op = 34
	OpDeleteDirV3        Op = 35
	OpRenameV3           Op = 36
	OpQueryVolumeInfoV3  Op = 37
	OpCreateSymlinkV3    Op = 38
	OpServerLockChangeV3 Op = 39
	OpWriteWin32StreamV3 Op = 40
	OpCreateSessionV4    Op = 41
	OpDestroySessionV4   Op = 42
	OpReadFastV4         Op = 43
	OpWriteFastV4        Op = 44
	OpSetWatchV4         Op = 45
	OpRemoveWatchV4      Op = 46
	OpNotifyV4           Op = 47
	OpSearchReadV4       Op = 48
	OpMax                Op = 65
	// OpNewHeader sits at offset 4 of a V4 header, where a legacy header
	// has its op, so that old servers see an unknown op.
	OpNewHeader Op = 0xFF
)

func opName(o Op) string {
	names := [...]string{
		"OPEN", "READ", "WRITE", "CLOSE", "SEARCH_OPEN", "SEARCH_READ", "SEARCH_CLOSE",
		"GETATTR", "SETATTR", "CREATE_DIR", "DELETE_FILE", "DELETE_DIR", "RENAME",
		"QUERY_VOLUME_INFO", "OPEN_V2", "GETATTR_V2", "SETATTR_V2", "SEARCH_READ_V2",
		"CREATE_SYMLINK", "SERVER_LOCK_CHANGE", "CREATE_DIR_V2", "DELETE_FILE_V2",
		"DELETE_DIR_V2", "RENAME_V2", "OPEN_V3", "READ_V3", "WRITE_V3", "CLOSE_V3",
		"SEARCH_OPEN_V3", "SEARCH_READ_V3", "SEARCH_CLOSE_V3", "GETATTR_V3", "SETATTR_V3",
		"CREATE_DIR_V3", "DELETE_FILE_V3", "DELETE_DIR_V3", "RENAME_V3",
		"QUERY_VOLUME_INFO_V3", "CREATE_SYMLINK_V3", "SERVER_LOCK_CHANGE_V3",
		"WRITE_WIN32_STREAM_V3", "CREATE_SESSION_V4", "DESTROY_SESSION_V4",
		"READ_FAST_V4", "WRITE_FAST_V4", "SET_WATCH_V4", "REMOVE_WATCH_V4", "NOTIFY_V4",
		"SEARCH_READ_V4", "OPEN_V4", "ENUMERATE_STREAMS_V4", "GETATTR_V4", "SETATTR_V4",
		"DELETE_V4", "LINKMOVE_V4", "FSCTL_V4", "ACCESS_CHECK_V4", "FSYNC_V4",
		"QUERY_VOLUME_INFO_V4", "OPLOCK_ACQUIRE_V4", "OPLOCK_BREAK_V4",
		"LOCK_BYTE_RANGE_V4", "UNLOCK_BYTE_RANGE_V4", "QUERY_EAS_V4", "SET_EAS_V4",
	}
	if int(o) < len(names) {
		return names[o]
	}
	return ""
}

func (o Op) String() string {
	if n := opName(o); n != "" {
		return n
	}
	if o == OpNewHeader {
		return "NEW_HEADER"
	}
	return "OP_" + strconv.FormatUint(uint64(o), 10)
}

// Status is an HGFS status code (HgfsStatus).
type Status uint32

// Status codes. The order of InvalidName and GenericError is historical.
const (
	StatusSuccess               Status = 0
	StatusNoSuchFileOrDir       Status = 1
	StatusInvalidHandle         Status = 2
	StatusOperationNotPermitted Status = 3
	StatusFileExists            Status = 4
	StatusNotDirectory          Status = 5
	StatusDirNotEmpty           Status = 6
	StatusProtocolError         Status = 7
	StatusAccessDenied          Status = 8
	StatusInvalidName           Status = 9
	StatusGenericError          Status = 10
	StatusSharingViolation      Status = 11
	StatusNoSpace               Status = 12
	StatusOperationNotSupported Status = 13
	StatusNameTooLong           Status = 14
	StatusInvalidParameter      Status = 15
	StatusNotSameDevice         Status = 16
	StatusStaleSession          Status = 17
	StatusTooManySessions       Status = 18
	StatusTransportError        Status = 19
)

func statusName(s Status) string {
	names := [...]string{
		"SUCCESS", "NO_SUCH_FILE_OR_DIR", "INVALID_HANDLE", "OPERATION_NOT_PERMITTED",
		"FILE_EXISTS", "NOT_DIRECTORY", "DIR_NOT_EMPTY", "PROTOCOL_ERROR", "ACCESS_DENIED",
		"INVALID_NAME", "GENERIC_ERROR", "SHARING_VIOLATION", "NO_SPACE",
		"OPERATION_NOT_SUPPORTED", "NAME_TOO_LONG", "INVALID_PARAMETER", "NOT_SAME_DEVICE",
		"STALE_SESSION", "TOO_MANY_SESSIONS", "TRANSPORT_ERROR",
	}
	if int(s) < len(names) {
		return names[s]
	}
	return ""
}

func (s Status) String() string {
	if n := statusName(s); n != "" {
		return n
	}
	return "STATUS_" + strconv.FormatUint(uint64(s), 10)
}

// Error makes a non-success Status usable as an error.
func (s Status) Error() string { return "hgfs: host status " + s.String() }

// Sizes (lib/include/hgfs.h).
const (
	HeaderSize           = 52     // HgfsHeader (V4)
	LegacyHeaderSize     = 8      // HgfsRequest / HgfsReply
	PageSize             = 4096   // HGFS_PAGE_SIZE
	HeaderSizeMax        = 2048   // budget for headers when deriving an I/O size
	PacketMax            = 6144   // classic packet, and the cap for legacy non-read replies
	IOMax                = 4096   // V1/V2 read/write chunk
	LargeIOMax           = 520192 // 127 pages: max data per V3 read/write
	LargePacketMax       = 522240 // LargeIOMax + HeaderSizeMax
	LegacyLargeIOMax     = 61440  // 15 pages
	LegacyLargePacketMax = 63488  // 0xF800
	// MaxGuestMessage is GUESTMSG_MAX_IN_SIZE: the VMX's cap on one guest
	// message, which bounds a request ("f " included), not a reply.
	MaxGuestMessage = 65536
	// NameMax is the longest name component a client shows (f_namemax).
	NameMax = 255
)

// HeaderVersion is the V4 header version clients send.
const HeaderVersion = 1

// Packet flags of the V4 header.
const (
	PacketFlagRequest      = 1 << 0
	PacketFlagReply        = 1 << 1
	PacketFlagInfoExtError = 1 << 2
	PacketFlagValidMask    = 0x7
)

// Invalid values.
const (
	InvalidHandle    uint32 = 0xFFFFFFFF
	InvalidSessionID uint64 = ^uint64(0)
)

// Session flags (HgfsSessionFlags).
const (
	SessionMaxPacketSizeValid  = 1 << 0
	SessionChangeNotifyEnabled = 1 << 1
	SessionOplockEnabled       = 1 << 2
	SessionAsyncIOEnabled      = 1 << 3
)

// Capability flags (HgfsOpCapFlags, low 16 bits).
const (
	CapNotSupported = 0
	CapIsSupported  = 1 << 0
	CapAsynchronous = 1 << 1
)

// File types (HgfsFileType).
const (
	FileTypeRegular   uint32 = 0
	FileTypeDirectory uint32 = 1
	FileTypeSymlink   uint32 = 2
)

// Attribute valid-mask bits (HgfsAttrValid).
const (
	AttrValidType           uint64 = 1 << 0
	AttrValidSize           uint64 = 1 << 1
	AttrValidCreateTime     uint64 = 1 << 2
	AttrValidAccessTime     uint64 = 1 << 3
	AttrValidWriteTime      uint64 = 1 << 4
	AttrValidChangeTime     uint64 = 1 << 5
	AttrValidSpecialPerms   uint64 = 1 << 6
	AttrValidOwnerPerms     uint64 = 1 << 7
	AttrValidGroupPerms     uint64 = 1 << 8
	AttrValidOtherPerms     uint64 = 1 << 9
	AttrValidFlags          uint64 = 1 << 10
	AttrValidAllocationSize uint64 = 1 << 11
	AttrValidUserID         uint64 = 1 << 12
	AttrValidGroupID        uint64 = 1 << 13
	AttrValidFileID         uint64 = 1 << 14
	AttrValidVolID          uint64 = 1 << 15
	AttrValidNonStaticID    uint64 = 1 << 16
	AttrValidEffectivePerms uint64 = 1 << 17

	// AttrValidAllPerms is the four permission groups.
	AttrValidAllPerms = AttrValidSpecialPerms | AttrValidOwnerPerms | AttrValidGroupPerms | AttrValidOtherPerms
	// AttrValidAllTimes is the four times.
	AttrValidAllTimes = AttrValidCreateTime | AttrValidAccessTime | AttrValidWriteTime | AttrValidChangeTime
)

// Attribute flags (HgfsAttrFlags).
const (
	AttrFlagHidden         uint64 = 1 << 0
	AttrFlagSystem         uint64 = 1 << 1
	AttrFlagArchive        uint64 = 1 << 2
	AttrFlagHiddenForced   uint64 = 1 << 3
	AttrFlagReparsePoint   uint64 = 1 << 4
	AttrFlagReadOnly       uint64 = 1 << 8
	AttrFlagSequentialOnly uint64 = 1 << 11
)

// Permission bits of one group (HgfsPermissions).
const (
	PermRead  = 4
	PermWrite = 2
	PermExec  = 1
)

// Attribute hints (HgfsAttrHint) of GETATTR_V3 and SETATTR_V3.
const (
	AttrHintSetAccessTime uint64 = 1 << 0
	AttrHintSetWriteTime  uint64 = 1 << 1
	AttrHintUseFileDesc   uint64 = 1 << 2
)

// Open modes (HgfsOpenMode).
const (
	OpenModeReadOnly   uint32 = 0
	OpenModeWriteOnly  uint32 = 1
	OpenModeReadWrite  uint32 = 2
	OpenModeAccmodes   uint32 = 3
	OpenModeSequential uint32 = 1 << 2
)

// Open flags (HgfsOpenFlags; an enum, not bits).
const (
	OpenFlagOpen        uint32 = 0 // must exist
	OpenFlagOpenEmpty   uint32 = 1 // must exist, truncate
	OpenFlagCreate      uint32 = 2 // create or open
	OpenFlagCreateSafe  uint32 = 3 // create, fail if it exists
	OpenFlagCreateEmpty uint32 = 4 // create or truncate
)

// Open valid-mask bits (HgfsOpenValid).
const (
	OpenValidMode           uint64 = 1 << 0
	OpenValidFlags          uint64 = 1 << 1
	OpenValidSpecialPerms   uint64 = 1 << 2
	OpenValidOwnerPerms     uint64 = 1 << 3
	OpenValidGroupPerms     uint64 = 1 << 4
	OpenValidOtherPerms     uint64 = 1 << 5
	OpenValidFileAttr       uint64 = 1 << 6
	OpenValidAllocationSize uint64 = 1 << 7
	OpenValidDesiredAccess  uint64 = 1 << 8
	OpenValidShareAccess    uint64 = 1 << 9
	OpenValidServerLock     uint64 = 1 << 10
	OpenValidFileName       uint64 = 1 << 11

	OpenValidAllPerms = OpenValidSpecialPerms | OpenValidOwnerPerms | OpenValidGroupPerms | OpenValidOtherPerms
)

// Lock types (HgfsLockType).
const (
	LockNone uint32 = 0
)

// WriteAppend (HGFS_WRITE_APPEND) makes WRITE_V3 append at the host's EOF.
const WriteAppend uint8 = 1

// Create-dir valid-mask bits (HgfsCreateDirValid).
const (
	CreateDirValidSpecialPerms uint64 = 1 << 0
	CreateDirValidOwnerPerms   uint64 = 1 << 1
	CreateDirValidGroupPerms   uint64 = 1 << 2
	CreateDirValidOtherPerms   uint64 = 1 << 3
	CreateDirValidFileName     uint64 = 1 << 4
	CreateDirValidFileAttr     uint64 = 1 << 5
)

// Delete hints.
const DeleteHintUseFileDesc uint64 = 1 << 0

// Rename hints (HgfsRenameHint).
const (
	RenameHintUseSrcFileDesc    uint64 = 1 << 0
	RenameHintUseTargetFileDesc uint64 = 1 << 1
	RenameHintNoReplaceExisting uint64 = 1 << 2
	RenameHintNoCopyAllowed     uint64 = 1 << 3
)

// File name flags and case types (HgfsFileNameV3).
const (
	FileNameUseFileDesc uint32 = 1 << 0

	CaseDefault     uint32 = 0
	CaseSensitive   uint32 = 1
	CaseInsensitive uint32 = 2
)
