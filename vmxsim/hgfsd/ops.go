package hgfsd

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"golang.org/x/sys/unix"
)

type hstatus = hgfsproto.Status

const sOK = hgfsproto.StatusSuccess

// capabilities is the host's default table: ops 0-64, V1-V3 supported
// except the lock-change ops and the Windows stream op, sessions
// supported, the other V4 ops not.
func capabilities() []hgfsproto.Capability {
	caps := make([]hgfsproto.Capability, 0, int(hgfsproto.OpMax))
	for op := range hgfsproto.OpMax {
		flags := uint32(hgfsproto.CapIsSupported)
		switch {
		case op == hgfsproto.OpServerLockChange || op == hgfsproto.OpServerLockChangeV3 || op == hgfsproto.OpWriteWin32StreamV3:
			flags = hgfsproto.CapNotSupported
		case op > hgfsproto.OpDestroySessionV4:
			flags = hgfsproto.CapNotSupported
		}
		caps = append(caps, hgfsproto.Capability{Op: op, Flags: flags})
	}
	return caps
}

// serve runs one op in session s and returns the reply payload.
func (h *Server) serve(s *hgfsSession, req hgfsproto.Request) ([]byte, hstatus) {
	p := req.Payload
	if req.Kind == hgfsproto.KindV1 {
		return h.serveV1(s, req)
	}
	switch req.Op {
	case hgfsproto.OpOpenV3:
		return h.open(s, p)
	case hgfsproto.OpWriteV3:
		return h.write(s, p)
	case hgfsproto.OpCloseV3:
		return h.closeFile(s, p)
	case hgfsproto.OpSearchOpenV3:
		return h.searchOpen(s, p, func(id uint32) []byte { return hgfsproto.AppendHandleReply(nil, id) })
	case hgfsproto.OpSearchReadV3:
		return h.searchRead(s, req)
	case hgfsproto.OpSearchCloseV3:
		return h.searchClose(s, p)
	case hgfsproto.OpGetattrV3:
		return h.getattr(p)
	case hgfsproto.OpSetattrV3:
		return h.setattr(p)
	case hgfsproto.OpCreateDirV3:
		return h.mkdir(p)
	case hgfsproto.OpDeleteFileV3, hgfsproto.OpDeleteDirV3:
		return h.remove(p, req.Op == hgfsproto.OpDeleteDirV3)
	case hgfsproto.OpRenameV3:
		return h.rename(p)
	case hgfsproto.OpQueryVolumeInfoV3:
		return h.volume(p)
	case hgfsproto.OpCreateSymlinkV3:
		return h.symlink(p)
	case hgfsproto.OpServerLockChangeV3:
		return nil, hgfsproto.StatusOperationNotSupported
	}
	return nil, hgfsproto.StatusProtocolError
}

// errStatus maps a host error to a hstatus as a Linux host does.
func errStatus(err error) hstatus {
	if err == nil {
		return sOK
	}
	if strings.Contains(err.Error(), "path escapes from parent") {
		return hgfsproto.StatusAccessDenied
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return hgfsproto.StatusNoSuchFileOrDir
		case errors.Is(err, fs.ErrExist):
			return hgfsproto.StatusFileExists
		case errors.Is(err, fs.ErrPermission):
			return hgfsproto.StatusAccessDenied
		}
		return hgfsproto.StatusGenericError
	}
	switch errno {
	case syscall.ENOENT:
		return hgfsproto.StatusNoSuchFileOrDir
	case syscall.EBADF:
		return hgfsproto.StatusInvalidHandle
	case syscall.EPERM:
		return hgfsproto.StatusOperationNotPermitted
	case syscall.EEXIST, syscall.EISDIR:
		return hgfsproto.StatusFileExists
	case syscall.ENOTDIR:
		return hgfsproto.StatusNotDirectory
	case syscall.ENOTEMPTY:
		return hgfsproto.StatusDirNotEmpty
	case syscall.EPROTO:
		return hgfsproto.StatusProtocolError
	case syscall.EACCES:
		return hgfsproto.StatusAccessDenied
	case syscall.EINVAL:
		return hgfsproto.StatusInvalidName
	case syscall.ENOSPC:
		return hgfsproto.StatusNoSpace
	case syscall.EOPNOTSUPP:
		return hgfsproto.StatusOperationNotSupported
	case syscall.ENAMETOOLONG:
		return hgfsproto.StatusNameTooLong
	case syscall.EXDEV:
		return hgfsproto.StatusNotSameDevice
	case syscall.ENETRESET:
		return hgfsproto.StatusStaleSession
	case syscall.ECONNREFUSED:
		return hgfsproto.StatusTooManySessions
	}
	return hgfsproto.StatusGenericError
}

// rootAttr is the virtual root's synthetic attributes.
func rootAttr() hgfsproto.Attr {
	now := hgfsproto.NTTime(time.Now())
	return hgfsproto.Attr{
		Mask: hgfsproto.AttrValidType | hgfsproto.AttrValidSize | hgfsproto.AttrValidAllTimes |
			hgfsproto.AttrValidOwnerPerms | hgfsproto.AttrValidGroupPerms | hgfsproto.AttrValidOtherPerms,
		Type: hgfsproto.FileTypeDirectory, Size: 4192,
		CreationTime: now, AccessTime: now, WriteTime: now, ChangeTime: now,
		OwnerPerms: 5, GroupPerms: 5, OtherPerms: 5,
	}
}

// statAttr converts an lstat result as a Linux host does.
func statAttr(fi fs.FileInfo, readOnly bool) hgfsproto.Attr {
	a := hgfsproto.Attr{
		Mask: hgfsproto.AttrValidType | hgfsproto.AttrValidSize | hgfsproto.AttrValidAllocationSize |
			hgfsproto.AttrValidAllTimes | hgfsproto.AttrValidAllPerms | hgfsproto.AttrValidUserID |
			hgfsproto.AttrValidGroupID | hgfsproto.AttrValidFileID | hgfsproto.AttrValidVolID,
		Size: uint64(fi.Size()),
	}
	switch {
	case fi.IsDir():
		a.Type = hgfsproto.FileTypeDirectory
	case fi.Mode()&fs.ModeSymlink != 0:
		a.Type = hgfsproto.FileTypeSymlink
	}
	mode := uint32(fi.Mode().Perm())
	if fi.Mode()&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if fi.Mode()&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if fi.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	a.SetPerm(mode)
	mt := hgfsproto.NTTime(fi.ModTime())
	a.CreationTime, a.AccessTime, a.WriteTime, a.ChangeTime = mt, mt, mt, mt
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		a.AccessTime = hgfsproto.NTTime(time.Unix(st.Atim.Unix()))
		a.ChangeTime = hgfsproto.NTTime(time.Unix(st.Ctim.Unix()))
		a.UserID, a.GroupID = st.Uid, st.Gid
		a.HostFileID = st.Ino
		a.VolumeID = uint32(st.Dev)
		a.AllocationSize = uint64(st.Blocks) * 512
		if a.Type != hgfsproto.FileTypeSymlink {
			a.Mask |= hgfsproto.AttrValidEffectivePerms
			a.EffectivePerms = effectivePerms(mode, st.Uid, st.Gid, a.Type == hgfsproto.FileTypeDirectory)
			if readOnly {
				a.EffectivePerms &^= hgfsproto.PermWrite
			}
		}
	}
	return a
}

// effectivePerms is what the server's user may do with the file.
func effectivePerms(mode, uid, gid uint32, dir bool) uint32 {
	if os.Geteuid() == 0 {
		p := uint32(hgfsproto.PermRead | hgfsproto.PermWrite)
		if dir || mode&0o111 != 0 {
			p |= hgfsproto.PermExec
		}
		return p
	}
	switch {
	case uint32(os.Geteuid()) == uid:
		return mode >> 6 & 7
	case uint32(os.Getegid()) == gid:
		return mode >> 3 & 7
	}
	return mode & 7
}

func (h *Server) getattr(p []byte) ([]byte, hstatus) {
	_, fn, err := hgfsproto.DecodeHintsRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	sh, rel, st := h.resolve(fn)
	if st != sOK {
		return nil, st
	}
	if sh == nil {
		return hgfsproto.GetattrReply{Attr: rootAttr()}.Append(nil), sOK
	}
	root, st := h.shareRoot(sh)
	if st != sOK {
		return nil, st
	}
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, errStatus(err)
	}
	rep := hgfsproto.GetattrReply{Attr: statAttr(fi, sh.spec.ReadOnly)}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := root.Readlink(rel)
		if err != nil {
			return nil, errStatus(err)
		}
		rep.SymlinkTarget = hgfsproto.SymlinkTarget(target)
	}
	return rep.Append(nil), sOK
}

func openFlags(r hgfsproto.OpenRequest) (int, hstatus) {
	flag := 0
	switch r.Mode & hgfsproto.OpenModeAccmodes {
	case hgfsproto.OpenModeReadOnly:
		flag = os.O_RDONLY
	case hgfsproto.OpenModeWriteOnly:
		flag = os.O_WRONLY
	case hgfsproto.OpenModeReadWrite:
		flag = os.O_RDWR
	default:
		return 0, hgfsproto.StatusInvalidParameter
	}
	oflags := hgfsproto.OpenFlagOpen
	if r.Mask&hgfsproto.OpenValidFlags != 0 {
		oflags = r.Flags
	}
	switch oflags {
	case hgfsproto.OpenFlagOpen:
	case hgfsproto.OpenFlagOpenEmpty:
		flag |= os.O_TRUNC
	case hgfsproto.OpenFlagCreate:
		flag |= os.O_CREATE
	case hgfsproto.OpenFlagCreateSafe:
		flag |= os.O_CREATE | os.O_EXCL
	case hgfsproto.OpenFlagCreateEmpty:
		flag |= os.O_CREATE | os.O_TRUNC
	default:
		return 0, hgfsproto.StatusInvalidParameter
	}
	return flag, sOK
}

// createPerm applies the host rule: missing owner bits default to rw,
// missing group/other bits copy the owner's.
func createPerm(mask uint64, special, owner, group, other uint8, sv, ov, gv, tv uint64, defOwner uint8) uint32 {
	if mask&ov == 0 {
		owner = defOwner
	}
	if mask&gv == 0 {
		group = owner
	}
	if mask&tv == 0 {
		other = owner
	}
	if mask&sv == 0 {
		special = 0
	}
	return uint32(special&7)<<9 | uint32(owner&7)<<6 | uint32(group&7)<<3 | uint32(other&7)
}

func (h *Server) open(s *hgfsSession, p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeOpenRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	flag, st := openFlags(r)
	if st != sOK {
		return nil, st
	}
	sh, rel, st := h.resolve(r.Name)
	if st != sOK {
		return nil, st
	}
	if sh == nil {
		return nil, hgfsproto.StatusAccessDenied
	}
	root, st := h.shareRoot(sh)
	if st != sOK {
		return nil, st
	}
	writes := flag&(os.O_WRONLY|os.O_RDWR|os.O_TRUNC|os.O_CREATE) != 0
	if sh.spec.ReadOnly && writes {
		if flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL {
			if _, err := root.Lstat(rel); err == nil {
				return nil, hgfsproto.StatusFileExists
			}
		}
		return nil, hgfsproto.StatusAccessDenied
	}
	perm := createPerm(r.Mask, r.SpecialPerms, r.OwnerPerms, r.GroupPerms, r.OtherPerms,
		hgfsproto.OpenValidSpecialPerms, hgfsproto.OpenValidOwnerPerms, hgfsproto.OpenValidGroupPerms, hgfsproto.OpenValidOtherPerms, 6)
	f, err := openNoFollow(root, rel, flag|syscall.O_NONBLOCK, perm&0o777)
	if err != nil {
		return nil, errStatus(err)
	}
	if perm&0o7000 != 0 && flag&os.O_CREATE != 0 {
		f.Chmod(fs.FileMode(perm&0o777) | modeSpecial(perm))
	}
	// Back to blocking mode for reads of regular files.
	unix.SetNonblock(int(f.Fd()), false)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !sh.enabled {
		f.Close()
		return nil, hgfsproto.StatusNoSuchFileOrDir
	}
	id := h.allocHandle()
	s.files[id] = &hgfsNode{f: f, share: sh, write: flag&(os.O_WRONLY|os.O_RDWR) != 0}
	return hgfsproto.OpenReply{Handle: id}.Append(nil), sOK
}

func modeSpecial(perm uint32) fs.FileMode {
	var m fs.FileMode
	if perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func (h *Server) fileNode(s *hgfsSession, id uint32) *hgfsNode {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.files[id]
}

// readReply answers READ_V3 with the whole reply packet, appended to
// dst, in one buffer: the file is read straight into its place after the
// headers, so a half-megabyte reply is neither allocated nor copied twice.
func (h *Server) readReply(dst []byte, s *hgfsSession, req hgfsproto.Request) []byte {
	fail := func(st hstatus) []byte { return hgfsproto.AppendReply(dst, req, s.id, st, nil) }
	r, err := hgfsproto.DecodeReadRequest(req.Payload)
	if err != nil {
		return fail(hgfsproto.StatusProtocolError)
	}
	n := h.fileNode(s, r.Handle)
	if n == nil {
		return fail(hgfsproto.StatusInvalidHandle)
	}
	size := int(r.Size)
	if max := replyBudget(s, req) - hgfsproto.ReadReplyHead - 1; size > max {
		size = max
	}
	size = min(max(size, 0), hgfsproto.LargeIOMax)
	head := len(dst) + hgfsproto.LegacyHeaderSize
	if req.Kind == hgfsproto.KindV4 {
		head = len(dst) + hgfsproto.HeaderSize
	}
	out := make([]byte, head+hgfsproto.ReadReplyHead+size+1)
	copy(out, dst)
	data := out[head+hgfsproto.ReadReplyHead : head+hgfsproto.ReadReplyHead+size]
	got, err := n.f.ReadAt(data, int64(r.Offset))
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(errStatus(err))
	}
	// The head (actualSize, reserved) and the placeholder byte, around
	// the data already in place.
	payload := out[head : head+hgfsproto.ReadReplyHead+got+1]
	binary.LittleEndian.PutUint32(payload, uint32(got))
	clear(payload[4:hgfsproto.ReadReplyHead])
	payload[len(payload)-1] = 0
	// The header goes in front of the payload, in place as well.
	pre := out[:len(dst)]
	if req.Kind == hgfsproto.KindV4 {
		hgfsproto.AppendHeader(pre, hgfsproto.Header{
			Version: hgfsproto.HeaderVersion, PacketSize: uint32(hgfsproto.HeaderSize + len(payload)),
			RequestID: req.ID, Op: req.Op, Flags: hgfsproto.PacketFlagReply, SessionID: s.id,
		})
	} else {
		hgfsproto.AppendLegacyHeader(pre, req.ID, uint32(sOK))
	}
	return out[:head+len(payload)]
}

func (h *Server) write(s *hgfsSession, p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeWriteRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	n := h.fileNode(s, r.Handle)
	if n == nil {
		return nil, hgfsproto.StatusInvalidHandle
	}
	if n.share.spec.ReadOnly || !n.write {
		return nil, hgfsproto.StatusAccessDenied
	}
	var written int
	if r.Flags&hgfsproto.WriteAppend != 0 {
		n.mu.Lock()
		var end int64
		end, err = n.f.Seek(0, io.SeekEnd)
		if err == nil {
			written, err = n.f.WriteAt(r.Data, end)
		}
		n.mu.Unlock()
	} else {
		written, err = n.f.WriteAt(r.Data, int64(r.Offset))
	}
	if err != nil && written == 0 {
		return nil, errStatus(err)
	}
	return hgfsproto.AppendWriteReply(nil, uint32(written)), sOK
}

func (h *Server) closeFile(s *hgfsSession, p []byte) ([]byte, hstatus) {
	id, err := hgfsproto.DecodeHandleRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	h.mu.Lock()
	n := s.files[id]
	delete(s.files, id)
	h.mu.Unlock()
	if n == nil {
		return nil, hgfsproto.StatusInvalidHandle
	}
	if err := n.f.Close(); err != nil {
		return nil, errStatus(err)
	}
	return hgfsproto.AppendReserved(nil), sOK
}

// listing snapshots a directory's names: ".", "..", then its entries,
// each with its type only. As a host does (HgfsPlatformSetDirEntry with
// getAttr), the attributes of an entry are read when a SEARCH_READ sends
// it (entryAttr), so what a client lists is as fresh as a GETATTR
// answered then. The virtual root lists the shares with their
// attributes at once.
func (h *Server) listing(sh *hgfsShare, rel string) ([]hgfsproto.DirEntry, hstatus) {
	if sh == nil {
		entries := []hgfsproto.DirEntry{{Name: []byte("."), Attr: rootAttr()}, {Name: []byte(".."), Attr: rootAttr()}}
		h.mu.Lock()
		shares := h.sortedSharesLocked(true)
		h.mu.Unlock()
		for _, s := range shares {
			a := hgfsproto.Attr{Mask: hgfsproto.AttrValidType, Type: hgfsproto.FileTypeDirectory}
			if root, st := h.shareRoot(s); st == sOK {
				if fi, err := root.Lstat("."); err == nil {
					a = statAttr(fi, s.spec.ReadOnly)
				}
			}
			entries = append(entries, hgfsproto.DirEntry{Name: []byte(s.spec.Name), Attr: a})
		}
		return entries, sOK
	}
	root, st := h.shareRoot(sh)
	if st != sOK {
		return nil, st
	}
	d, err := root.Open(rel)
	if err != nil {
		return nil, errStatus(err)
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return nil, errStatus(err)
	}
	if !fi.IsDir() {
		return nil, hgfsproto.StatusNotDirectory
	}
	dirType := hgfsproto.Attr{Mask: hgfsproto.AttrValidType, Type: hgfsproto.FileTypeDirectory}
	entries := []hgfsproto.DirEntry{{Name: []byte("."), Attr: dirType}, {Name: []byte(".."), Attr: dirType}}
	des, err := d.ReadDir(-1)
	if err != nil && len(des) == 0 {
		return nil, errStatus(err)
	}
	for _, de := range des {
		a := hgfsproto.Attr{Mask: hgfsproto.AttrValidType, Type: hgfsproto.FileTypeRegular}
		switch {
		case de.IsDir():
			a.Type = hgfsproto.FileTypeDirectory
		case de.Type()&fs.ModeSymlink != 0:
			a.Type = hgfsproto.FileTypeSymlink
		}
		entries = append(entries, hgfsproto.DirEntry{Name: []byte(de.Name()), Attr: a})
	}
	return entries, sOK
}

// entryAttr returns entry i of a search as a SEARCH_READ sends it: with
// the attributes its file has now, or its type only when they cannot be
// read (it was removed since the search began, say), as hosts do. "."
// and ".." both get the directory's attributes.
func (h *Server) entryAttr(se *hgfsSearch, i int) hgfsproto.DirEntry {
	e := se.entries[i]
	if se.share == nil {
		return e
	}
	root, st := h.shareRoot(se.share)
	if st != sOK {
		return e
	}
	p := se.dir
	if n := string(e.Name); n != "." && n != ".." {
		p = path.Join(se.dir, n)
	}
	if fi, err := root.Lstat(p); err == nil {
		e.Attr = statAttr(fi, se.share.spec.ReadOnly)
	}
	// Names travel unescaped, as a Linux host sends them ("a!%b" is "a/b").
	e.Name = []byte(hgfsproto.Unescape(string(e.Name)))
	return e
}

func (h *Server) searchOpen(s *hgfsSession, p []byte, reply func(uint32) []byte) ([]byte, hstatus) {
	fn, err := hgfsproto.DecodeNameRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	return h.openSearch(s, fn, reply)
}

func (h *Server) openSearch(s *hgfsSession, fn hgfsproto.FileName, reply func(uint32) []byte) ([]byte, hstatus) {
	sh, rel, st := h.resolve(fn)
	if st != sOK {
		return nil, st
	}
	entries, st := h.listing(sh, rel)
	if st != sOK {
		return nil, st
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sh != nil && !sh.enabled {
		return nil, hgfsproto.StatusNoSuchFileOrDir
	}
	id := h.allocHandle()
	s.searches[id] = &hgfsSearch{share: sh, dir: rel, entries: entries}
	return reply(id), sOK
}

func (h *Server) searchRead(s *hgfsSession, req hgfsproto.Request) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeSearchReadRequest(req.Payload)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	h.mu.Lock()
	se := s.searches[r.Search]
	h.mu.Unlock()
	if se == nil {
		return nil, hgfsproto.StatusInvalidHandle
	}
	if int(r.Offset) >= len(se.entries) {
		return hgfsproto.AppendSearchReadReply(nil, nil), sOK
	}
	// A host answers SEARCH_READ_V3 with exactly one entry whatever the
	// request's flags say (HgfsUnpackSearchReadRequest hardwires
	// HGFS_SEARCH_READ_SINGLE_ENTRY); the V3 format could carry more, but
	// only SEARCH_READ_V4 over shared memory ever does.
	return hgfsproto.AppendSearchReadReply(nil, []hgfsproto.DirEntry{h.entryAttr(se, int(r.Offset))}), sOK
}

func (h *Server) searchClose(s *hgfsSession, p []byte) ([]byte, hstatus) {
	id, err := hgfsproto.DecodeHandleRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.searches[id] == nil {
		return nil, hgfsproto.StatusInvalidHandle
	}
	delete(s.searches, id)
	return hgfsproto.AppendReserved(nil), sOK
}

// writable resolves a name for a modifying op: the virtual root and
// read-only shares refuse.
func (h *Server) writable(fn hgfsproto.FileName) (*os.Root, string, hstatus) {
	sh, rel, st := h.resolve(fn)
	if st != sOK {
		return nil, "", st
	}
	if sh == nil || sh.spec.ReadOnly {
		return nil, "", hgfsproto.StatusAccessDenied
	}
	root, st := h.shareRoot(sh)
	return root, rel, st
}

func (h *Server) setattr(p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeSetattrRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	if r.Hints&hgfsproto.AttrHintUseFileDesc != 0 {
		return nil, hgfsproto.StatusInvalidParameter
	}
	root, rel, st := h.writable(r.Name)
	if st != sOK {
		return nil, st
	}
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, errStatus(err)
	}
	a := r.Attr
	result := sOK
	fail := func(err error) {
		if err != nil {
			result = errStatus(err)
		}
	}
	if a.Mask&(hgfsproto.AttrValidUserID|hgfsproto.AttrValidGroupID) != 0 {
		uid, gid := -1, -1
		if a.Mask&hgfsproto.AttrValidUserID != 0 {
			uid = int(a.UserID)
		}
		if a.Mask&hgfsproto.AttrValidGroupID != 0 {
			gid = int(a.GroupID)
		}
		fail(root.Lchown(rel, uid, gid))
	}
	if a.Mask&hgfsproto.AttrValidAllPerms != 0 {
		if fi.Mode()&fs.ModeSymlink != 0 {
			result = hgfsproto.StatusOperationNotSupported
		} else {
			cur := statAttr(fi, false)
			if a.Mask&hgfsproto.AttrValidSpecialPerms != 0 {
				cur.SpecialPerms = a.SpecialPerms
			}
			if a.Mask&hgfsproto.AttrValidOwnerPerms != 0 {
				cur.OwnerPerms = a.OwnerPerms
			}
			if a.Mask&hgfsproto.AttrValidGroupPerms != 0 {
				cur.GroupPerms = a.GroupPerms
			}
			if a.Mask&hgfsproto.AttrValidOtherPerms != 0 {
				cur.OtherPerms = a.OtherPerms
			}
			perm := cur.Perm()
			fail(root.Chmod(rel, fs.FileMode(perm&0o777)|modeSpecial(perm)))
		}
	}
	if a.Mask&hgfsproto.AttrValidSize != 0 {
		f, err := root.OpenFile(rel, os.O_WRONLY, 0)
		if err == nil {
			err = f.Truncate(int64(a.Size))
			f.Close()
		}
		fail(err)
	}
	if a.Mask&(hgfsproto.AttrValidAccessTime|hgfsproto.AttrValidWriteTime) != 0 {
		now := time.Now()
		var atime, mtime time.Time // zero: leave unchanged
		if a.Mask&hgfsproto.AttrValidAccessTime != 0 {
			atime = now
			if r.Hints&hgfsproto.AttrHintSetAccessTime != 0 {
				atime = hgfsproto.TimeFromNT(a.AccessTime)
			}
		}
		if a.Mask&hgfsproto.AttrValidWriteTime != 0 {
			mtime = now
			if r.Hints&hgfsproto.AttrHintSetWriteTime != 0 {
				mtime = hgfsproto.TimeFromNT(a.WriteTime)
			}
		}
		fail(utimesAt(root, rel, atime, mtime))
	}
	if result != sOK {
		return nil, result
	}
	return hgfsproto.AppendReserved(nil), sOK
}

func (h *Server) mkdir(p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeCreateDirRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	root, rel, st := h.writable(r.Name)
	if st != sOK {
		return nil, st
	}
	perm := createPerm(r.Mask, r.SpecialPerms, r.OwnerPerms, r.GroupPerms, r.OtherPerms,
		hgfsproto.CreateDirValidSpecialPerms, hgfsproto.CreateDirValidOwnerPerms, hgfsproto.CreateDirValidGroupPerms, hgfsproto.CreateDirValidOtherPerms, 7)
	if err := root.Mkdir(rel, fs.FileMode(perm&0o777)); err != nil {
		return nil, errStatus(err)
	}
	if perm&0o7000 != 0 {
		root.Chmod(rel, fs.FileMode(perm&0o777)|modeSpecial(perm))
	}
	return hgfsproto.AppendReserved(nil), sOK
}

func (h *Server) remove(p []byte, dir bool) ([]byte, hstatus) {
	hints, fn, err := hgfsproto.DecodeHintsRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	if hints&hgfsproto.DeleteHintUseFileDesc != 0 {
		return nil, hgfsproto.StatusInvalidParameter
	}
	root, rel, st := h.writable(fn)
	if st != sOK {
		return nil, st
	}
	if rel == "." {
		return nil, hgfsproto.StatusAccessDenied
	}
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, errStatus(err)
	}
	switch {
	case dir && !fi.IsDir():
		return nil, hgfsproto.StatusNotDirectory
	case !dir && fi.IsDir():
		return nil, hgfsproto.StatusFileExists // EISDIR
	}
	if err := root.Remove(rel); err != nil {
		return nil, errStatus(err)
	}
	return hgfsproto.AppendReserved(nil), sOK
}

func (h *Server) rename(p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeRenameRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	if r.Hints&(hgfsproto.RenameHintUseSrcFileDesc|hgfsproto.RenameHintUseTargetFileDesc) != 0 {
		return nil, hgfsproto.StatusInvalidParameter
	}
	src, srel, st := h.writable(r.OldName)
	if st != sOK {
		return nil, st
	}
	dst, drel, st := h.writable(r.NewName)
	if st != sOK {
		return nil, st
	}
	if src != dst {
		return nil, hgfsproto.StatusNotSameDevice
	}
	if srel == "." || drel == "." {
		return nil, hgfsproto.StatusAccessDenied
	}
	if r.Hints&hgfsproto.RenameHintNoReplaceExisting != 0 {
		if _, err := dst.Lstat(drel); err == nil {
			return nil, hgfsproto.StatusFileExists
		}
	}
	if err := renameAt(src, srel, drel); err != nil {
		return nil, errStatus(err)
	}
	return hgfsproto.AppendReserved(nil), sOK
}

// parentAt opens the parent directory of rel inside root (resolved by
// the root, so it cannot leave the share) and returns it with the final
// component, which the *at calls use without following it.
func parentAt(root *os.Root, rel string) (*os.File, string, error) {
	if rel == "." || rel == "" {
		return nil, "", syscall.EINVAL
	}
	d, err := root.Open(path.Dir(rel))
	if err != nil {
		return nil, "", err
	}
	return d, path.Base(rel), nil
}

// openNoFollow opens rel as a host without follow-symlinks does: the
// parent is resolved inside the root and the final component is opened
// with O_NOFOLLOW, so a symlink (even one swapped in at this moment) fails
// with ELOOP, which maps to GENERIC_ERROR.
func openNoFollow(root *os.Root, rel string, flag int, perm uint32) (*os.File, error) {
	if rel == "." {
		return root.OpenFile(rel, flag, fs.FileMode(perm))
	}
	d, base, err := parentAt(root, rel)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: rel, Err: err}
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// renameAt is rename(2) inside a root: unlike os.Rename it replaces an
// empty directory, as a host's rename does.
func renameAt(root *os.Root, from, to string) error {
	fd, fbase, err := parentAt(root, from)
	if err != nil {
		return err
	}
	defer fd.Close()
	td, tbase, err := parentAt(root, to)
	if err != nil {
		return err
	}
	defer td.Close()
	return unix.Renameat(int(fd.Fd()), fbase, int(td.Fd()), tbase)
}

// utimesAt sets times on rel itself (a symlink is not followed); a zero
// time is left unchanged.
func utimesAt(root *os.Root, rel string, atime, mtime time.Time) error {
	d, base, err := parentAt(root, rel)
	if err != nil {
		return err
	}
	defer d.Close()
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if !atime.IsZero() {
		ts[0] = unix.NsecToTimespec(atime.UnixNano())
	}
	if !mtime.IsZero() {
		ts[1] = unix.NsecToTimespec(mtime.UnixNano())
	}
	return unix.UtimesNanoAt(int(d.Fd()), base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func statfs(root *os.Root) (free, total uint64, err error) {
	d, err := root.Open(".")
	if err != nil {
		return 0, 0, err
	}
	defer d.Close()
	var sf unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &sf); err != nil {
		return 0, 0, err
	}
	return sf.Bavail * uint64(sf.Bsize), sf.Blocks * uint64(sf.Bsize), nil
}

func (h *Server) volume(p []byte) ([]byte, hstatus) {
	fn, err := hgfsproto.DecodeNameRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	sh, _, st := h.resolve(fn)
	if st != sOK {
		return nil, st
	}
	var shares []*hgfsShare
	if sh != nil {
		shares = []*hgfsShare{sh}
	} else {
		h.mu.Lock()
		shares = h.sortedSharesLocked(true)
		h.mu.Unlock()
	}
	var free, total uint64
	for i, s := range shares {
		root, st := h.shareRoot(s)
		if st != sOK {
			if sh != nil {
				return nil, st
			}
			continue
		}
		f, t, err := statfs(root)
		if err != nil {
			return nil, hgfsproto.StatusGenericError
		}
		if i == 0 || f < free {
			free = f
		}
		if i == 0 || t < total {
			total = t
		}
	}
	return hgfsproto.AppendVolumeReply(nil, free, total), sOK
}

func (h *Server) symlink(p []byte) ([]byte, hstatus) {
	r, err := hgfsproto.DecodeSymlinkRequest(p)
	if err != nil {
		return nil, hgfsproto.StatusProtocolError
	}
	root, rel, st := h.writable(r.Link)
	if st != sOK {
		return nil, st
	}
	target := hgfsproto.SymlinkTargetString(r.Target.Name)
	if target == "" {
		return nil, hgfsproto.StatusInvalidName
	}
	if err := root.Symlink(target, rel); err != nil {
		return nil, errStatus(err)
	}
	return hgfsproto.AppendReserved(nil), sOK
}

// serveV1 answers the V1 search ops vmware-hgfsclient uses; other V1 and
// V2 ops get PROTOCOL_ERROR, which sends clients to V3.
func (h *Server) serveV1(s *hgfsSession, req hgfsproto.Request) ([]byte, hstatus) {
	p := req.Payload
	switch req.Op {
	case hgfsproto.OpSearchOpen:
		name, err := hgfsproto.DecodeV1SearchOpen(p)
		if err != nil {
			return nil, hgfsproto.StatusProtocolError
		}
		fn := hgfsproto.FileName{Name: name}
		return h.openSearch(s, fn, func(id uint32) []byte { return hgfsproto.AppendV1Handle(nil, req.ID, 0, id) })
	case hgfsproto.OpSearchRead:
		id, off, err := hgfsproto.DecodeV1SearchRead(p)
		if err != nil {
			return nil, hgfsproto.StatusProtocolError
		}
		h.mu.Lock()
		se := s.searches[id]
		h.mu.Unlock()
		if se == nil {
			return nil, hgfsproto.StatusInvalidHandle
		}
		var a hgfsproto.AttrV1
		var name []byte
		if int(off) < len(se.entries) {
			e := h.entryAttr(se, int(off))
			name = e.Name
			a = hgfsproto.AttrV1{Type: e.Attr.Type, Size: e.Attr.Size, CreationTime: e.Attr.CreationTime,
				AccessTime: e.Attr.AccessTime, WriteTime: e.Attr.WriteTime, ChangeTime: e.Attr.ChangeTime,
				Permissions: e.Attr.OwnerPerms}
		}
		return hgfsproto.AppendV1SearchReadReply(nil, req.ID, sOK, a, name), sOK
	case hgfsproto.OpSearchClose:
		id, err := hgfsproto.DecodeV1Handle(p)
		if err != nil {
			return nil, hgfsproto.StatusProtocolError
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if s.searches[id] == nil {
			return nil, hgfsproto.StatusInvalidHandle
		}
		delete(s.searches, id)
		return hgfsproto.AppendLegacyHeader(nil, req.ID, 0), sOK
	}
	return nil, hgfsproto.StatusProtocolError
}
