package hgfsproto

import (
	"encoding/binary"
	"time"
)

// AttrSize is the size of HgfsAttrV2.
const AttrSize = 104

// Attr is HgfsAttrV2, the attributes of GETATTR_V3, SETATTR_V3 and
// SEARCH_READ_V3. Times are FILETIME; Mask says which fields are valid.
type Attr struct {
	Mask           uint64
	Type           uint32
	Size           uint64
	CreationTime   uint64
	AccessTime     uint64
	WriteTime      uint64
	ChangeTime     uint64
	SpecialPerms   uint8
	OwnerPerms     uint8
	GroupPerms     uint8
	OtherPerms     uint8
	Flags          uint64
	AllocationSize uint64
	UserID         uint32
	GroupID        uint32
	HostFileID     uint64
	VolumeID       uint32
	EffectivePerms uint32
}

// Append appends the 104-byte encoding.
func (a Attr) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, a.Mask)
	b = binary.LittleEndian.AppendUint32(b, a.Type)
	b = binary.LittleEndian.AppendUint64(b, a.Size)
	b = binary.LittleEndian.AppendUint64(b, a.CreationTime)
	b = binary.LittleEndian.AppendUint64(b, a.AccessTime)
	b = binary.LittleEndian.AppendUint64(b, a.WriteTime)
	b = binary.LittleEndian.AppendUint64(b, a.ChangeTime)
	b = append(b, a.SpecialPerms, a.OwnerPerms, a.GroupPerms, a.OtherPerms)
	b = binary.LittleEndian.AppendUint64(b, a.Flags)
	b = binary.LittleEndian.AppendUint64(b, a.AllocationSize)
	b = binary.LittleEndian.AppendUint32(b, a.UserID)
	b = binary.LittleEndian.AppendUint32(b, a.GroupID)
	b = binary.LittleEndian.AppendUint64(b, a.HostFileID)
	b = binary.LittleEndian.AppendUint32(b, a.VolumeID)
	b = binary.LittleEndian.AppendUint32(b, a.EffectivePerms)
	return binary.LittleEndian.AppendUint64(b, 0)
}

// DecodeAttr decodes HgfsAttrV2 from the start of p.
func DecodeAttr(p []byte) (Attr, error) {
	if len(p) < AttrSize {
		return Attr{}, malformed("attributes truncated (%d of %d bytes)", len(p), AttrSize)
	}
	return Attr{
		Mask:           binary.LittleEndian.Uint64(p[0:]),
		Type:           binary.LittleEndian.Uint32(p[8:]),
		Size:           binary.LittleEndian.Uint64(p[12:]),
		CreationTime:   binary.LittleEndian.Uint64(p[20:]),
		AccessTime:     binary.LittleEndian.Uint64(p[28:]),
		WriteTime:      binary.LittleEndian.Uint64(p[36:]),
		ChangeTime:     binary.LittleEndian.Uint64(p[44:]),
		SpecialPerms:   p[52],
		OwnerPerms:     p[53],
		GroupPerms:     p[54],
		OtherPerms:     p[55],
		Flags:          binary.LittleEndian.Uint64(p[56:]),
		AllocationSize: binary.LittleEndian.Uint64(p[64:]),
		UserID:         binary.LittleEndian.Uint32(p[72:]),
		GroupID:        binary.LittleEndian.Uint32(p[76:]),
		HostFileID:     binary.LittleEndian.Uint64(p[80:]),
		VolumeID:       binary.LittleEndian.Uint32(p[88:]),
		EffectivePerms: binary.LittleEndian.Uint32(p[92:]),
	}, nil
}

// SetPerm sets the four permission groups from the low 12 bits of a
// POSIX mode and marks them valid.
func (a *Attr) SetPerm(mode uint32) {
	a.SpecialPerms = uint8(mode>>9) & 7
	a.OwnerPerms = uint8(mode>>6) & 7
	a.GroupPerms = uint8(mode>>3) & 7
	a.OtherPerms = uint8(mode) & 7
	a.Mask |= AttrValidAllPerms
}

// Perm returns the POSIX permission bits. Groups the host left out
// (Windows hosts send owner bits only) copy the owner's bits, as the C
// client does; special bits default to none.
func (a Attr) Perm() uint32 {
	owner := uint32(a.OwnerPerms) & 7
	if a.Mask&AttrValidOwnerPerms == 0 {
		owner = PermRead | PermWrite
		if a.Type == FileTypeDirectory {
			owner |= PermExec
		}
	}
	group, other := owner, owner
	if a.Mask&AttrValidGroupPerms != 0 {
		group = uint32(a.GroupPerms) & 7
	}
	if a.Mask&AttrValidOtherPerms != 0 {
		other = uint32(a.OtherPerms) & 7
	}
	var special uint32
	if a.Mask&AttrValidSpecialPerms != 0 {
		special = uint32(a.SpecialPerms) & 7
	}
	return special<<9 | owner<<6 | group<<3 | other
}

// Times returns access, write (modification) and change times.
func (a Attr) Times() (atime, mtime, ctime time.Time) {
	return TimeFromNT(a.AccessTime), TimeFromNT(a.WriteTime), TimeFromNT(a.ChangeTime)
}

// AttrV1Size is the size of the V1 HgfsAttr.
const AttrV1Size = 45

// AttrV1 is the V1 HgfsAttr used by V1 search replies (owner bits only).
type AttrV1 struct {
	Type         uint32
	Size         uint64
	CreationTime uint64
	AccessTime   uint64
	WriteTime    uint64
	ChangeTime   uint64
	Permissions  uint8
}

// Append appends the 45-byte encoding.
func (a AttrV1) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, a.Type)
	b = binary.LittleEndian.AppendUint64(b, a.Size)
	b = binary.LittleEndian.AppendUint64(b, a.CreationTime)
	b = binary.LittleEndian.AppendUint64(b, a.AccessTime)
	b = binary.LittleEndian.AppendUint64(b, a.WriteTime)
	b = binary.LittleEndian.AppendUint64(b, a.ChangeTime)
	return append(b, a.Permissions)
}

// DecodeAttrV1 decodes a V1 HgfsAttr from the start of p.
func DecodeAttrV1(p []byte) (AttrV1, error) {
	if len(p) < AttrV1Size {
		return AttrV1{}, malformed("v1 attributes truncated (%d bytes)", len(p))
	}
	return AttrV1{
		Type: binary.LittleEndian.Uint32(p), Size: binary.LittleEndian.Uint64(p[4:]), CreationTime: binary.LittleEndian.Uint64(p[12:]),
		AccessTime: binary.LittleEndian.Uint64(p[20:]), WriteTime: binary.LittleEndian.Uint64(p[28:]), ChangeTime: binary.LittleEndian.Uint64(p[36:]),
		Permissions: p[44],
	}, nil
}
