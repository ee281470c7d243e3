package guestops

import (
	"errors"
	"syscall"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// MaxHGFSData bounds the data of one READ_V3/WRITE_V3: its reply (or
// request) must fit one VIX message (docs/guestops.md).
const MaxHGFSData = 0xF000

// maxOpenFiles bounds the descriptors one transfer server holds.
const maxOpenFiles = 4

// Transfer is the file an HGFS packet of a guest-ops transfer may touch,
// resolved and confined by vmtoolsd: the path of the transfer, whether
// it may be written, and the handle vmtoolsd assigned (for the one-shot
// HGFS).
type Transfer struct {
	Path   string
	Write  bool
	Handle uint32
}

// TransferServer serves the HGFS packets of one file transfer (opcode
// 84) with this process's (the user's) rights, on the one path vmtoolsd
// confined the transfer to. OPEN_V3 opens the file with O_NOFOLLOW and
// keeps the descriptor under the handle vmtoolsd assigned until
// CLOSE_V3, so a symlink swapped in later is never followed and every
// READ_V3/WRITE_V3 is one pread/pwrite of at most MaxHGFSData bytes:
// nothing but one packet is held in memory. A handle it did not open
// (its helper was restarted) is opened afresh, without creating or
// truncating. It is used by one goroutine.
type TransferServer struct {
	path  string
	write bool
	fds   map[uint32]openFile
	buf   []byte
}

type openFile struct {
	fd    int
	write bool
}

// NewTransferServer returns the server of the transfer of path.
func NewTransferServer(path string, write bool) *TransferServer {
	return &TransferServer{path: path, write: write, fds: map[uint32]openFile{}}
}

// Close closes every descriptor the server holds.
func (s *TransferServer) Close() {
	for h, f := range s.fds {
		syscall.Close(f.fd)
		delete(s.fds, h)
	}
}

// HGFS serves one request packet of a file transfer on t in a server of
// its own (opened, used once, closed), and returns the reply packet.
func HGFS(packet []byte, t Transfer) []byte {
	s := NewTransferServer(t.Path, t.Write)
	defer s.Close()
	return s.Serve(t.Handle, packet)
}

// Serve answers one request packet; handle is the one vmtoolsd checked
// (or, for OPEN_V3, assigned) for it. A packet that needs no reply
// (hgfsproto.ErrNoReply) gets nil.
func (s *TransferServer) Serve(handle uint32, packet []byte) []byte {
	req, err := hgfsproto.ParseRequest(packet)
	if err != nil {
		if errors.Is(err, hgfsproto.ErrNoReply) {
			return nil
		}
		return hgfsproto.AppendReply(nil, req, req.Header.SessionID, hgfsproto.StatusProtocolError, nil)
	}
	st, payload := s.serve(req, handle)
	return hgfsproto.AppendReply(nil, req, req.Header.SessionID, st, payload)
}

func (s *TransferServer) serve(req hgfsproto.Request, handle uint32) (hgfsproto.Status, []byte) {
	if req.Kind == hgfsproto.KindV1 {
		return hgfsproto.StatusOperationNotSupported, nil
	}
	switch req.Op {
	case hgfsproto.OpOpenV3:
		return s.open(req.Payload, handle)
	case hgfsproto.OpReadV3:
		r, err := hgfsproto.DecodeReadRequest(req.Payload)
		if err != nil {
			return hgfsproto.StatusProtocolError, nil
		}
		f, st := s.file(handle, false)
		if st != 0 {
			return st, nil
		}
		if s.buf == nil {
			s.buf = make([]byte, MaxHGFSData)
		}
		n, err := syscall.Pread(f.fd, s.buf[:min(r.Size, MaxHGFSData)], int64(r.Offset))
		if err != nil {
			return errStatus(err), nil
		}
		return 0, hgfsproto.AppendReadReply(nil, s.buf[:n])
	case hgfsproto.OpWriteV3:
		w, err := hgfsproto.DecodeWriteRequest(req.Payload)
		if err != nil || len(w.Data) > MaxHGFSData {
			return hgfsproto.StatusProtocolError, nil
		}
		if !s.write {
			return hgfsproto.StatusAccessDenied, nil
		}
		f, st := s.file(handle, true)
		if st != 0 {
			return st, nil
		}
		if !f.write {
			return hgfsproto.StatusAccessDenied, nil
		}
		n, err := syscall.Pwrite(f.fd, w.Data, int64(w.Offset))
		if err != nil {
			return errStatus(err), nil
		}
		return 0, hgfsproto.AppendWriteReply(nil, uint32(n))
	case hgfsproto.OpCloseV3:
		if f, ok := s.fds[handle]; ok {
			delete(s.fds, handle)
			if err := syscall.Close(f.fd); err != nil {
				return errStatus(err), nil
			}
		}
		return 0, hgfsproto.AppendReserved(nil)
	case hgfsproto.OpGetattrV3:
		var st syscall.Stat_t
		if err := syscall.Lstat(s.path, &st); err != nil {
			return errStatus(err), nil
		}
		a := hgfsproto.Attr{Mask: hgfsproto.AttrValidType | hgfsproto.AttrValidSize | hgfsproto.AttrValidUserID | hgfsproto.AttrValidGroupID,
			Size: uint64(st.Size), UserID: st.Uid, GroupID: st.Gid}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			a.Type = hgfsproto.FileTypeDirectory
		case syscall.S_IFLNK:
			a.Type = hgfsproto.FileTypeSymlink
		}
		a.SetPerm(st.Mode)
		return 0, hgfsproto.GetattrReply{Attr: a}.Append(nil)
	}
	return hgfsproto.StatusOperationNotSupported, nil
}

// open is OPEN_V3. As open-vm-tools' server, a request whose mask lacks
// OpenValidFileName is a protocol error, and the creation mode comes
// from the permission fields the mask marks valid (owner rw, and group
// and other copying the owner's, when unset), less the umask.
func (s *TransferServer) open(payload []byte, handle uint32) (hgfsproto.Status, []byte) {
	o, err := hgfsproto.DecodeOpenRequest(payload)
	if err != nil || o.Mask&hgfsproto.OpenValidFileName == 0 {
		return hgfsproto.StatusProtocolError, nil
	}
	write := o.Mode&hgfsproto.OpenModeAccmodes != hgfsproto.OpenModeReadOnly
	flags := syscall.O_RDONLY
	if write {
		if !s.write {
			return hgfsproto.StatusAccessDenied, nil
		}
		flags = syscall.O_WRONLY
		switch o.Flags {
		case hgfsproto.OpenFlagOpenEmpty:
			flags |= syscall.O_TRUNC
		case hgfsproto.OpenFlagCreate:
			flags |= syscall.O_CREAT
		case hgfsproto.OpenFlagCreateSafe:
			flags |= syscall.O_CREAT | syscall.O_EXCL
		case hgfsproto.OpenFlagCreateEmpty:
			flags |= syscall.O_CREAT | syscall.O_TRUNC
		}
	}
	if old, ok := s.fds[handle]; ok {
		syscall.Close(old.fd)
		delete(s.fds, handle)
	}
	if len(s.fds) >= maxOpenFiles {
		return hgfsproto.StatusTooManySessions, nil
	}
	fd, err := syscall.Open(s.path, flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, createMode(o))
	if err != nil {
		return errStatus(err), nil
	}
	s.fds[handle] = openFile{fd: fd, write: write}
	return 0, hgfsproto.OpenReply{Handle: handle}.Append(nil)
}

func createMode(o hgfsproto.OpenRequest) uint32 {
	var m uint32 = 0o600
	if o.Mask&hgfsproto.OpenValidOwnerPerms != 0 {
		m = uint32(o.OwnerPerms&7) << 6
	}
	if o.Mask&hgfsproto.OpenValidGroupPerms != 0 {
		m |= uint32(o.GroupPerms&7) << 3
	} else {
		m |= (m >> 3) & 0o070
	}
	if o.Mask&hgfsproto.OpenValidOtherPerms != 0 {
		m |= uint32(o.OtherPerms & 7)
	} else {
		m |= (m >> 6) & 0o007
	}
	return m
}

// file is the descriptor of handle, opened afresh (O_NOFOLLOW, neither
// creating nor truncating) when this server did not open it.
func (s *TransferServer) file(handle uint32, write bool) (openFile, hgfsproto.Status) {
	if f, ok := s.fds[handle]; ok {
		return f, 0
	}
	if len(s.fds) >= maxOpenFiles {
		return openFile{}, hgfsproto.StatusTooManySessions
	}
	flags := syscall.O_RDONLY
	if write {
		flags = syscall.O_WRONLY
	}
	fd, err := syscall.Open(s.path, flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return openFile{}, errStatus(err)
	}
	f := openFile{fd: fd, write: write}
	s.fds[handle] = f
	return f, 0
}

func errStatus(err error) hgfsproto.Status {
	switch err {
	case syscall.ENOENT:
		return hgfsproto.StatusNoSuchFileOrDir
	case syscall.EACCES, syscall.EPERM, syscall.ELOOP:
		return hgfsproto.StatusAccessDenied
	case syscall.EEXIST:
		return hgfsproto.StatusFileExists
	case syscall.ENOSPC, syscall.EDQUOT:
		return hgfsproto.StatusNoSpace
	case syscall.EISDIR, syscall.ENOTDIR:
		return hgfsproto.StatusNotDirectory
	}
	return hgfsproto.StatusGenericError
}
