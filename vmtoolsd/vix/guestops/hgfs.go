package guestops

import (
	"errors"
	"syscall"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// MaxHGFSData bounds the data of one READ_V3/WRITE_V3: its reply (or
// request) must fit one VIX message (docs/guestops.md).
const MaxHGFSData = 0xF000

// Transfer is the file an HGFS packet of a guest-ops transfer may touch,
// resolved and confined by vmtoolsd: the path of the transfer, whether
// it may be written, and the handle vmtoolsd assigned.
type Transfer struct {
	Path   string
	Write  bool
	Handle uint32
}

// HGFS serves one request packet of a file transfer (opcode 84) on t
// with this process's (the user's) rights, and returns the reply packet.
// Each packet opens the file afresh with O_NOFOLLOW and closes it, so no
// state lives here and no read or write is larger than MaxHGFSData.
func HGFS(packet []byte, t Transfer) []byte {
	req, err := hgfsproto.ParseRequest(packet)
	if err != nil {
		if errors.Is(err, hgfsproto.ErrNoReply) {
			return nil
		}
		return hgfsproto.AppendReply(nil, req, req.Header.SessionID, hgfsproto.StatusProtocolError, nil)
	}
	st, payload := serve(req, t)
	return hgfsproto.AppendReply(nil, req, req.Header.SessionID, st, payload)
}

func serve(req hgfsproto.Request, t Transfer) (hgfsproto.Status, []byte) {
	if req.Kind == hgfsproto.KindV1 {
		return hgfsproto.StatusOperationNotSupported, nil
	}
	switch req.Op {
	case hgfsproto.OpOpenV3:
		o, err := hgfsproto.DecodeOpenRequest(req.Payload)
		if err != nil {
			return hgfsproto.StatusProtocolError, nil
		}
		flags := syscall.O_RDONLY
		if o.Mode&hgfsproto.OpenModeAccmodes != hgfsproto.OpenModeReadOnly {
			if !t.Write {
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
		fd, err := syscall.Open(t.Path, flags|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return errStatus(err), nil
		}
		syscall.Close(fd)
		return 0, hgfsproto.OpenReply{Handle: t.Handle}.Append(nil)
	case hgfsproto.OpReadV3:
		r, err := hgfsproto.DecodeReadRequest(req.Payload)
		if err != nil {
			return hgfsproto.StatusProtocolError, nil
		}
		fd, err := syscall.Open(t.Path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != nil {
			return errStatus(err), nil
		}
		defer syscall.Close(fd)
		buf := make([]byte, min(r.Size, MaxHGFSData))
		n, err := syscall.Pread(fd, buf, int64(r.Offset))
		if err != nil {
			return errStatus(err), nil
		}
		return 0, hgfsproto.AppendReadReply(nil, buf[:n])
	case hgfsproto.OpWriteV3:
		w, err := hgfsproto.DecodeWriteRequest(req.Payload)
		if err != nil || len(w.Data) > MaxHGFSData {
			return hgfsproto.StatusProtocolError, nil
		}
		if !t.Write {
			return hgfsproto.StatusAccessDenied, nil
		}
		fd, err := syscall.Open(t.Path, syscall.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
		if err != nil {
			return errStatus(err), nil
		}
		defer syscall.Close(fd)
		n, err := syscall.Pwrite(fd, w.Data, int64(w.Offset))
		if err != nil {
			return errStatus(err), nil
		}
		return 0, hgfsproto.AppendWriteReply(nil, uint32(n))
	case hgfsproto.OpCloseV3:
		return 0, hgfsproto.AppendReserved(nil)
	case hgfsproto.OpGetattrV3:
		var st syscall.Stat_t
		if err := syscall.Lstat(t.Path, &st); err != nil {
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
