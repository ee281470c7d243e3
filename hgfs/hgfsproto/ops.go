package hgfsproto

import "encoding/binary"

// Op payload layouts (the V3 and session V4 structs). Offsets are relative
// to the op payload: after the V4 header, or after the legacy header for
// V3 ops. Every decoder checks its fixed part and every length field
// against the bytes given; trailing bytes are ignored (hosts count C
// placeholder bytes in their sizes).

func need(p []byte, n int, what string) error {
	if len(p) < n {
		return malformed("%s: %d bytes, need %d", what, len(p), n)
	}
	return nil
}

// Capability is one {op, flags} entry of a session's capability table.
type Capability struct {
	Op    Op
	Flags uint32
}

// CreateSessionRequest is HgfsRequestCreateSessionV4.
type CreateSessionRequest struct {
	MaxPacketSize uint32
	Flags         uint32
	Capabilities  []Capability
}

// Append appends the request. With no capabilities it still sends the
// C struct's one (zero) capability slot, as vmhgfs-fuse does, so hosts
// that check the struct size accept it.
func (r CreateSessionRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Capabilities)))
	b = binary.LittleEndian.AppendUint32(b, r.MaxPacketSize)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, c := range r.Capabilities {
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Op))
		b = binary.LittleEndian.AppendUint32(b, c.Flags)
	}
	if len(r.Capabilities) == 0 {
		b = append(b, make([]byte, 8)...)
	}
	return b
}

// DecodeCreateSessionRequest decodes the fields a host reads: the packet
// size and flags (the capability list is ignored, as hosts do).
func DecodeCreateSessionRequest(p []byte) (CreateSessionRequest, error) {
	if err := need(p, 16, "CREATE_SESSION_V4 request"); err != nil {
		return CreateSessionRequest{}, err
	}
	return CreateSessionRequest{MaxPacketSize: binary.LittleEndian.Uint32(p[4:]), Flags: binary.LittleEndian.Uint32(p[8:])}, nil
}

// CreateSessionReply is HgfsReplyCreateSessionV4.
type CreateSessionReply struct {
	SessionID     uint64
	MaxPacketSize uint32
	Flags         uint32
	Capabilities  []Capability
}

// Append appends the reply.
func (r CreateSessionReply) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.SessionID)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Capabilities)))
	b = binary.LittleEndian.AppendUint32(b, r.MaxPacketSize)
	b = binary.LittleEndian.AppendUint32(b, 0) // identityOffset
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, c := range r.Capabilities {
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Op))
		b = binary.LittleEndian.AppendUint32(b, c.Flags)
	}
	return b
}

// DecodeCreateSessionReply decodes a session reply; the capability
// count must fit the bytes received.
func DecodeCreateSessionReply(p []byte) (CreateSessionReply, error) {
	if err := need(p, 28, "CREATE_SESSION_V4 reply"); err != nil {
		return CreateSessionReply{}, err
	}
	r := CreateSessionReply{SessionID: binary.LittleEndian.Uint64(p), MaxPacketSize: binary.LittleEndian.Uint32(p[12:]), Flags: binary.LittleEndian.Uint32(p[20:])}
	n := binary.LittleEndian.Uint32(p[8:])
	if uint64(n)*8 > uint64(len(p)-28) {
		return CreateSessionReply{}, malformed("CREATE_SESSION_V4 reply: %d capabilities in %d bytes", n, len(p)-28)
	}
	for i := range int(n) {
		o := 28 + 8*i
		r.Capabilities = append(r.Capabilities, Capability{Op: Op(binary.LittleEndian.Uint32(p[o:])), Flags: binary.LittleEndian.Uint32(p[o+4:])})
	}
	return r, nil
}

// AppendReserved appends the 8-byte reserved payload of the simple
// replies (CLOSE, SEARCH_CLOSE, SETATTR, CREATE_DIR, DELETE, RENAME,
// CREATE_SYMLINK, DESTROY_SESSION) and of DESTROY_SESSION requests.
func AppendReserved(b []byte) []byte { return append(b, 0, 0, 0, 0, 0, 0, 0, 0) }

// OpenRequest is HgfsRequestOpenV3.
type OpenRequest struct {
	Mask           uint64
	Mode           uint32
	Flags          uint32
	SpecialPerms   uint8
	OwnerPerms     uint8
	GroupPerms     uint8
	OtherPerms     uint8
	Attr           uint64
	AllocationSize uint64
	DesiredAccess  uint32
	ShareAccess    uint32
	DesiredLock    uint32
	Name           FileName
}

// Append appends the request.
func (r OpenRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.Mask)
	b = binary.LittleEndian.AppendUint32(b, r.Mode)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	b = append(b, r.SpecialPerms, r.OwnerPerms, r.GroupPerms, r.OtherPerms)
	b = binary.LittleEndian.AppendUint64(b, r.Attr)
	b = binary.LittleEndian.AppendUint64(b, r.AllocationSize)
	b = binary.LittleEndian.AppendUint32(b, r.DesiredAccess)
	b = binary.LittleEndian.AppendUint32(b, r.ShareAccess)
	b = binary.LittleEndian.AppendUint32(b, r.DesiredLock)
	b = append(b, make([]byte, 16)...)
	return r.Name.Append(b)
}

// DecodeOpenRequest decodes HgfsRequestOpenV3.
func DecodeOpenRequest(p []byte) (OpenRequest, error) {
	if err := need(p, 64, "OPEN_V3 request"); err != nil {
		return OpenRequest{}, err
	}
	r := OpenRequest{
		Mask: binary.LittleEndian.Uint64(p), Mode: binary.LittleEndian.Uint32(p[8:]), Flags: binary.LittleEndian.Uint32(p[12:]),
		SpecialPerms: p[16], OwnerPerms: p[17], GroupPerms: p[18], OtherPerms: p[19],
		Attr: binary.LittleEndian.Uint64(p[20:]), AllocationSize: binary.LittleEndian.Uint64(p[28:]),
		DesiredAccess: binary.LittleEndian.Uint32(p[36:]), ShareAccess: binary.LittleEndian.Uint32(p[40:]), DesiredLock: binary.LittleEndian.Uint32(p[44:]),
	}
	var err error
	r.Name, _, err = DecodeFileName(p[64:])
	return r, err
}

// OpenReply is HgfsReplyOpenV3.
type OpenReply struct {
	Handle       uint32
	AcquiredLock uint32
	Flags        uint32
}

// Append appends the reply.
func (r OpenReply) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Handle)
	b = binary.LittleEndian.AppendUint32(b, r.AcquiredLock)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// DecodeOpenReply decodes HgfsReplyOpenV3.
func DecodeOpenReply(p []byte) (OpenReply, error) {
	if err := need(p, 12, "OPEN_V3 reply"); err != nil {
		return OpenReply{}, err
	}
	return OpenReply{Handle: binary.LittleEndian.Uint32(p), AcquiredLock: binary.LittleEndian.Uint32(p[4:]), Flags: binary.LittleEndian.Uint32(p[8:])}, nil
}

// ReadRequest is HgfsRequestReadV3.
type ReadRequest struct {
	Handle uint32
	Offset uint64
	Size   uint32
}

// Append appends the request.
func (r ReadRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Handle)
	b = binary.LittleEndian.AppendUint64(b, r.Offset)
	b = binary.LittleEndian.AppendUint32(b, r.Size)
	return AppendReserved(b)
}

// DecodeReadRequest decodes HgfsRequestReadV3.
func DecodeReadRequest(p []byte) (ReadRequest, error) {
	if err := need(p, 24, "READ_V3 request"); err != nil {
		return ReadRequest{}, err
	}
	return ReadRequest{Handle: binary.LittleEndian.Uint32(p), Offset: binary.LittleEndian.Uint64(p[4:]), Size: binary.LittleEndian.Uint32(p[12:])}, nil
}

// ReadReplyHead is the size of HgfsReplyReadV3 before its data.
const ReadReplyHead = 12

// AppendReadReply appends a READ_V3 reply carrying data, plus the C
// struct's placeholder byte that hosts count.
func AppendReadReply(b []byte, data []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = AppendReserved(b)
	b = append(b, data...)
	return append(b, 0)
}

// DecodeReadReply returns the data of a READ_V3 reply; actualSize must
// fit the bytes received and not exceed the size asked for.
func DecodeReadReply(p []byte, asked uint32) ([]byte, error) {
	if err := need(p, ReadReplyHead, "READ_V3 reply"); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(p)
	if n > asked {
		return nil, malformed("READ_V3 reply of %d bytes for a read of %d", n, asked)
	}
	if uint64(n) > uint64(len(p)-ReadReplyHead) {
		return nil, malformed("READ_V3 reply claims %d bytes, carries %d", n, len(p)-ReadReplyHead)
	}
	return p[ReadReplyHead : ReadReplyHead+int(n)], nil
}

// WriteRequestHead is the size of HgfsRequestWriteV3 before its data.
const WriteRequestHead = 25

// WriteRequest is HgfsRequestWriteV3.
type WriteRequest struct {
	Handle uint32
	Flags  uint8
	Offset uint64
	Data   []byte
}

// Append appends the request; the data starts at the C placeholder.
func (r WriteRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Handle)
	b = append(b, r.Flags)
	b = binary.LittleEndian.AppendUint64(b, r.Offset)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Data)))
	b = AppendReserved(b)
	return append(b, r.Data...)
}

// DecodeWriteRequest decodes HgfsRequestWriteV3; requiredSize must fit.
func DecodeWriteRequest(p []byte) (WriteRequest, error) {
	if err := need(p, WriteRequestHead, "WRITE_V3 request"); err != nil {
		return WriteRequest{}, err
	}
	n := binary.LittleEndian.Uint32(p[13:])
	if uint64(n) > uint64(len(p)-WriteRequestHead) {
		return WriteRequest{}, malformed("WRITE_V3 request claims %d bytes, carries %d", n, len(p)-WriteRequestHead)
	}
	return WriteRequest{Handle: binary.LittleEndian.Uint32(p), Flags: p[4], Offset: binary.LittleEndian.Uint64(p[5:]), Data: p[WriteRequestHead : WriteRequestHead+int(n)]}, nil
}

// AppendWriteReply appends a WRITE_V3 reply.
func AppendWriteReply(b []byte, n uint32) []byte {
	return AppendReserved(binary.LittleEndian.AppendUint32(b, n))
}

// DecodeWriteReply returns actualSize, which may not exceed the size
// written.
func DecodeWriteReply(p []byte, sent uint32) (uint32, error) {
	if err := need(p, 4, "WRITE_V3 reply"); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(p)
	if n > sent {
		return 0, malformed("WRITE_V3 reply says %d bytes written of %d", n, sent)
	}
	return n, nil
}

// AppendHandleRequest appends the {handle u32, reserved u64} request of
// CLOSE_V3 and SEARCH_CLOSE_V3.
func AppendHandleRequest(b []byte, h uint32) []byte {
	return AppendReserved(binary.LittleEndian.AppendUint32(b, h))
}

// DecodeHandleRequest decodes a CLOSE_V3 or SEARCH_CLOSE_V3 request.
func DecodeHandleRequest(p []byte) (uint32, error) {
	if err := need(p, 12, "handle request"); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// AppendHandleReply appends the {handle u32, reserved u64} reply of
// SEARCH_OPEN_V3.
func AppendHandleReply(b []byte, h uint32) []byte {
	return AppendReserved(binary.LittleEndian.AppendUint32(b, h))
}

// DecodeHandleReply decodes a SEARCH_OPEN_V3 reply.
func DecodeHandleReply(p []byte) (uint32, error) {
	if err := need(p, 4, "handle reply"); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

// AppendNameRequest appends the {reserved u64, name} request of
// SEARCH_OPEN_V3 and QUERY_VOLUME_INFO_V3.
func AppendNameRequest(b []byte, n FileName) []byte {
	return n.Append(AppendReserved(b))
}

// DecodeNameRequest decodes a SEARCH_OPEN_V3 or QUERY_VOLUME_INFO_V3
// request.
func DecodeNameRequest(p []byte) (FileName, error) {
	if err := need(p, 8, "name request"); err != nil {
		return FileName{}, err
	}
	n, _, err := DecodeFileName(p[8:])
	return n, err
}

// AppendHintsRequest appends the {hints u64, reserved u64, name} request
// of GETATTR_V3, DELETE_FILE_V3 and DELETE_DIR_V3.
func AppendHintsRequest(b []byte, hints uint64, n FileName) []byte {
	b = binary.LittleEndian.AppendUint64(b, hints)
	return n.Append(AppendReserved(b))
}

// DecodeHintsRequest decodes a GETATTR_V3 or DELETE_*_V3 request.
func DecodeHintsRequest(p []byte) (uint64, FileName, error) {
	if err := need(p, 16, "hints request"); err != nil {
		return 0, FileName{}, err
	}
	n, _, err := DecodeFileName(p[16:])
	return binary.LittleEndian.Uint64(p), n, err
}

// SearchReadRequest is HgfsRequestSearchReadV3.
type SearchReadRequest struct {
	Search uint32
	Offset uint32
	Flags  uint32
}

// Append appends the request.
func (r SearchReadRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Search)
	b = binary.LittleEndian.AppendUint32(b, r.Offset)
	b = binary.LittleEndian.AppendUint32(b, r.Flags)
	return AppendReserved(b)
}

// DecodeSearchReadRequest decodes HgfsRequestSearchReadV3.
func DecodeSearchReadRequest(p []byte) (SearchReadRequest, error) {
	if err := need(p, 20, "SEARCH_READ_V3 request"); err != nil {
		return SearchReadRequest{}, err
	}
	return SearchReadRequest{Search: binary.LittleEndian.Uint32(p), Offset: binary.LittleEndian.Uint32(p[4:]), Flags: binary.LittleEndian.Uint32(p[8:])}, nil
}

// DirEntry is one HgfsDirEntry of a SEARCH_READ_V3 reply.
type DirEntry struct {
	Attr Attr
	Name []byte // one component, as the host names it
}

// dirEntryHead is the size of HgfsDirEntry before the name bytes.
const dirEntryHead = 4 + AttrSize + fileNameHead

// DirEntrySize is the encoded size of an entry with a name of n bytes,
// padded to 8 as the C struct is.
func DirEntrySize(n int) int { return (dirEntryHead + n + 1 + 7) &^ 7 }

// SearchReadReplyHead is the size of HgfsReplySearchReadV3 before its
// entries.
const SearchReadReplyHead = 16

// AppendSearchReadReply appends a SEARCH_READ_V3 reply with entries.
// An empty list is encoded as the end marker hosts send: one entry with
// an empty name.
func AppendSearchReadReply(b []byte, entries []DirEntry) []byte {
	if len(entries) == 0 {
		entries = []DirEntry{{}}
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(entries)))
	b = AppendReserved(b)
	for i, e := range entries {
		start := len(b)
		size := DirEntrySize(len(e.Name))
		next := uint32(size)
		if i == len(entries)-1 {
			next = 0
		}
		b = binary.LittleEndian.AppendUint32(b, next)
		b = e.Attr.Append(b)
		b = FileName{Name: e.Name}.Append(b)
		for len(b)-start < size {
			b = append(b, 0)
		}
	}
	return b
}

// DecodeSearchReadReply decodes the entries of a SEARCH_READ_V3 reply,
// following each entry's nextEntry offset. The end of the directory is
// returned as done: a count of 0, or an entry with an empty name (which
// is not returned).
func DecodeSearchReadReply(p []byte) (entries []DirEntry, done bool, err error) {
	if err := need(p, SearchReadReplyHead, "SEARCH_READ_V3 reply"); err != nil {
		return nil, false, err
	}
	count := binary.LittleEndian.Uint64(p)
	if count == 0 {
		return nil, true, nil
	}
	body := p[SearchReadReplyHead:]
	if count > uint64(len(body)/dirEntryHead) {
		return nil, false, malformed("SEARCH_READ_V3 reply: %d entries in %d bytes", count, len(body))
	}
	off := 0
	for i := range count {
		e := body[off:]
		if err := need(e, dirEntryHead, "directory entry"); err != nil {
			return nil, false, err
		}
		next := binary.LittleEndian.Uint32(e)
		attr, _ := DecodeAttr(e[4:])
		name, _, err := DecodeFileName(e[4+AttrSize:])
		if err != nil {
			return nil, false, err
		}
		if len(name.Name) == 0 {
			return entries, true, nil
		}
		entries = append(entries, DirEntry{Attr: attr, Name: name.Name})
		if i == count-1 {
			break
		}
		// The next entry starts after this one's name and its NUL: an
		// offset inside them would decode this entry's name bytes as
		// the next entry's header.
		if uint64(next) < uint64(dirEntryHead+len(name.Name)+1) || uint64(next) > uint64(len(e)) {
			return nil, false, malformed("directory entry %d: next offset %d of %d bytes", i, next, len(e))
		}
		off += int(next)
	}
	return entries, false, nil
}

// GetattrReply is HgfsReplyGetattrV3.
type GetattrReply struct {
	Attr          Attr
	SymlinkTarget []byte // CPNameLite; empty unless a symlink
}

// Append appends the reply.
func (r GetattrReply) Append(b []byte) []byte {
	b = r.Attr.Append(b)
	b = AppendReserved(b)
	return FileName{Name: r.SymlinkTarget}.Append(b)
}

// DecodeGetattrReply decodes HgfsReplyGetattrV3. A reply that ends
// after the attributes (some hosts omit an empty target) is accepted.
func DecodeGetattrReply(p []byte) (GetattrReply, error) {
	a, err := DecodeAttr(p)
	if err != nil {
		return GetattrReply{}, err
	}
	r := GetattrReply{Attr: a}
	if len(p) <= AttrSize+8 {
		return r, nil
	}
	t, _, err := DecodeFileName(p[AttrSize+8:])
	if err != nil {
		return GetattrReply{}, err
	}
	r.SymlinkTarget = t.Name
	return r, nil
}

// SetattrRequest is HgfsRequestSetattrV3.
type SetattrRequest struct {
	Hints uint64
	Attr  Attr
	Name  FileName
}

// Append appends the request.
func (r SetattrRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.Hints)
	b = r.Attr.Append(b)
	b = AppendReserved(b)
	return r.Name.Append(b)
}

// DecodeSetattrRequest decodes HgfsRequestSetattrV3.
func DecodeSetattrRequest(p []byte) (SetattrRequest, error) {
	if err := need(p, 8+AttrSize+8, "SETATTR_V3 request"); err != nil {
		return SetattrRequest{}, err
	}
	a, _ := DecodeAttr(p[8:])
	n, _, err := DecodeFileName(p[8+AttrSize+8:])
	return SetattrRequest{Hints: binary.LittleEndian.Uint64(p), Attr: a, Name: n}, err
}

// CreateDirRequest is HgfsRequestCreateDirV3.
type CreateDirRequest struct {
	Mask         uint64
	SpecialPerms uint8
	OwnerPerms   uint8
	GroupPerms   uint8
	OtherPerms   uint8
	FileAttr     uint64
	Name         FileName
}

// Append appends the request.
func (r CreateDirRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.Mask)
	b = append(b, r.SpecialPerms, r.OwnerPerms, r.GroupPerms, r.OtherPerms)
	b = binary.LittleEndian.AppendUint64(b, r.FileAttr)
	return r.Name.Append(b)
}

// DecodeCreateDirRequest decodes HgfsRequestCreateDirV3.
func DecodeCreateDirRequest(p []byte) (CreateDirRequest, error) {
	if err := need(p, 20, "CREATE_DIR_V3 request"); err != nil {
		return CreateDirRequest{}, err
	}
	n, _, err := DecodeFileName(p[20:])
	return CreateDirRequest{
		Mask: binary.LittleEndian.Uint64(p), SpecialPerms: p[8], OwnerPerms: p[9], GroupPerms: p[10], OtherPerms: p[11],
		FileAttr: binary.LittleEndian.Uint64(p[12:]), Name: n,
	}, err
}

// RenameRequest is HgfsRequestRenameV3.
type RenameRequest struct {
	Hints   uint64
	OldName FileName
	NewName FileName
}

// Append appends the request; the new name follows the old name's NUL.
func (r RenameRequest) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.Hints)
	b = AppendReserved(b)
	b = r.OldName.Append(b)
	return r.NewName.Append(b)
}

// DecodeRenameRequest decodes HgfsRequestRenameV3.
func DecodeRenameRequest(p []byte) (RenameRequest, error) {
	if err := need(p, 16, "RENAME_V3 request"); err != nil {
		return RenameRequest{}, err
	}
	o, rest, err := DecodeFileName(p[16:])
	if err != nil {
		return RenameRequest{}, err
	}
	n, _, err := DecodeFileName(rest)
	return RenameRequest{Hints: binary.LittleEndian.Uint64(p), OldName: o, NewName: n}, err
}

// AppendVolumeReply appends a QUERY_VOLUME_INFO_V3 reply (free first).
func AppendVolumeReply(b []byte, free, total uint64) []byte {
	b = binary.LittleEndian.AppendUint64(b, free)
	b = binary.LittleEndian.AppendUint64(b, total)
	return AppendReserved(b)
}

// DecodeVolumeReply decodes a QUERY_VOLUME_INFO_V3 reply.
func DecodeVolumeReply(p []byte) (free, total uint64, err error) {
	if err := need(p, 16, "QUERY_VOLUME_INFO_V3 reply"); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), nil
}

// SymlinkRequest is HgfsRequestSymlinkCreateV3.
type SymlinkRequest struct {
	Link   FileName // CP name of the link
	Target FileName // CPNameLite of the target
}

// Append appends the request.
func (r SymlinkRequest) Append(b []byte) []byte {
	b = AppendReserved(b)
	b = r.Link.Append(b)
	return r.Target.Append(b)
}

// DecodeSymlinkRequest decodes HgfsRequestSymlinkCreateV3.
func DecodeSymlinkRequest(p []byte) (SymlinkRequest, error) {
	if err := need(p, 8, "CREATE_SYMLINK_V3 request"); err != nil {
		return SymlinkRequest{}, err
	}
	l, rest, err := DecodeFileName(p[8:])
	if err != nil {
		return SymlinkRequest{}, err
	}
	t, _, err := DecodeFileName(rest)
	return SymlinkRequest{Link: l, Target: t}, err
}
