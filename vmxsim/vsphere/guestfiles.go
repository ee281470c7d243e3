package vsphere

import (
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func (m *guestFileManager) ListFilesInGuest(ctx *simulator.Context, req *types.ListFilesInGuest) soap.HasFault {
	body := new(methods.ListFilesInGuestBody)
	max := req.MaxResults
	if max == 0 {
		max = 50 // the API's default
	}
	res := &types.GuestListFileInfo{}
	var offset uint64
	for {
		lf := &vixproto.ListFiles{Path: req.FilePath, Pattern: req.MatchPattern, Index: req.Index, MaxResults: max, Offset: offset}
		p, f := m.g.call(req.Vm, req.Auth, vixproto.OpListFiles, lf.Encode())
		if f != nil {
			body.Fault_ = fault(f)
			return body
		}
		r := vixproto.ParseListFilesResult(string(p))
		for _, fi := range r.Files {
			res.Files = append(res.Files, guestFileInfo(fi))
		}
		res.Remaining = int32(r.Remaining)
		// A reply cut by the guest's buffer is asked again from where it
		// stopped, as hostd does.
		if !r.Truncated || len(r.Files) == 0 {
			break
		}
		offset += uint64(len(r.Files))
	}
	body.Res = &types.ListFilesInGuestResponse{Returnval: *res}
	return body
}

func guestFileInfo(f vixproto.FileInfo) types.GuestFileInfo {
	typ := string(types.GuestFileTypeFile)
	switch f.Type {
	case vixproto.FileTypeDir:
		typ = string(types.GuestFileTypeDirectory)
	case vixproto.FileTypeSymlink:
		typ = string(types.GuestFileTypeSymlink)
	}
	mt, at := time.Unix(f.MTime, 0).UTC(), time.Unix(f.ATime, 0).UTC()
	uid, gid := int32(f.UID), int32(f.GID)
	return types.GuestFileInfo{Path: f.Name, Type: typ, Size: f.Size, Attributes: &types.GuestPosixFileAttributes{
		GuestFileAttributes: types.GuestFileAttributes{ModificationTime: &mt, AccessTime: &at, SymlinkTarget: f.SymlinkTarget},
		OwnerId:             &uid, GroupId: &gid, Permissions: int64(f.Mode),
	}}
}

// empty sends one request whose answer carries nothing and returns
// vSphere's empty response R, or the fault.
func empty[R any](g *guestOps, vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, op uint32, b []byte) (*R, *soap.Fault) {
	if _, f := g.call(vm, auth, op, b); f != nil {
		return nil, fault(f)
	}
	return new(R), nil
}

// tempPath sends CreateTemporaryFile or CreateTemporaryDirectory and
// returns the path the guest made, or the fault.
func (m *guestFileManager) tempPath(vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, op uint32, prefix, suffix, dir string) (string, *soap.Fault) {
	p, f := m.g.call(vm, auth, op, (&vixproto.CreateTemp{Prefix: prefix, Suffix: suffix, Dir: dir}).Encode())
	if f != nil {
		return "", fault(f)
	}
	return string(p), nil
}

func (m *guestFileManager) MakeDirectoryInGuest(ctx *simulator.Context, req *types.MakeDirectoryInGuest) soap.HasFault {
	body := new(methods.MakeDirectoryInGuestBody)
	body.Res, body.Fault_ = empty[types.MakeDirectoryInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpCreateDirectoryEx,
		(&vixproto.FileOp{Op: vixproto.OpCreateDirectoryEx, Path: req.DirectoryPath, Flag: req.CreateParentDirectories}).Encode())
	return body
}

func (m *guestFileManager) DeleteFileInGuest(ctx *simulator.Context, req *types.DeleteFileInGuest) soap.HasFault {
	body := new(methods.DeleteFileInGuestBody)
	body.Res, body.Fault_ = empty[types.DeleteFileInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpDeleteFileEx,
		(&vixproto.FileOp{Op: vixproto.OpDeleteFileEx, Path: req.FilePath}).Encode())
	return body
}

func (m *guestFileManager) DeleteDirectoryInGuest(ctx *simulator.Context, req *types.DeleteDirectoryInGuest) soap.HasFault {
	body := new(methods.DeleteDirectoryInGuestBody)
	body.Res, body.Fault_ = empty[types.DeleteDirectoryInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpDeleteDirectoryEx,
		(&vixproto.FileOp{Op: vixproto.OpDeleteDirectoryEx, Path: req.DirectoryPath, Flag: req.Recursive}).Encode())
	return body
}

func (m *guestFileManager) MoveFileInGuest(ctx *simulator.Context, req *types.MoveFileInGuest) soap.HasFault {
	body := new(methods.MoveFileInGuestBody)
	body.Res, body.Fault_ = empty[types.MoveFileInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpMoveFileEx,
		(&vixproto.Rename{Old: req.SrcFilePath, New: req.DstFilePath, Overwrite: req.Overwrite}).Encode())
	return body
}

func (m *guestFileManager) MoveDirectoryInGuest(ctx *simulator.Context, req *types.MoveDirectoryInGuest) soap.HasFault {
	body := new(methods.MoveDirectoryInGuestBody)
	body.Res, body.Fault_ = empty[types.MoveDirectoryInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpMoveDirectory,
		(&vixproto.Rename{Old: req.SrcDirectoryPath, New: req.DstDirectoryPath}).Encode())
	return body
}

func (m *guestFileManager) CreateTemporaryFileInGuest(ctx *simulator.Context, req *types.CreateTemporaryFileInGuest) soap.HasFault {
	body := new(methods.CreateTemporaryFileInGuestBody)
	p, f := m.tempPath(req.Vm, req.Auth, vixproto.OpCreateTempFileEx, req.Prefix, req.Suffix, req.DirectoryPath)
	if body.Fault_ = f; f == nil {
		body.Res = &types.CreateTemporaryFileInGuestResponse{Returnval: p}
	}
	return body
}

func (m *guestFileManager) CreateTemporaryDirectoryInGuest(ctx *simulator.Context, req *types.CreateTemporaryDirectoryInGuest) soap.HasFault {
	body := new(methods.CreateTemporaryDirectoryInGuestBody)
	p, f := m.tempPath(req.Vm, req.Auth, vixproto.OpCreateTempDirectory, req.Prefix, req.Suffix, req.DirectoryPath)
	if body.Fault_ = f; f == nil {
		body.Res = &types.CreateTemporaryDirectoryInGuestResponse{Returnval: p}
	}
	return body
}

func (m *guestFileManager) ChangeFileAttributesInGuest(ctx *simulator.Context, req *types.ChangeFileAttributesInGuest) soap.HasFault {
	body := new(methods.ChangeFileAttributesInGuestBody)
	sa := &vixproto.SetAttrs{Path: req.GuestFilePath}
	switch a := req.FileAttributes.(type) {
	case *types.GuestPosixFileAttributes:
		if a.OwnerId != nil {
			sa.Options |= vixproto.AttrSetUnixOwner
			sa.Owner = *a.OwnerId
		}
		if a.GroupId != nil {
			sa.Options |= vixproto.AttrSetUnixGroup
			sa.Group = *a.GroupId
		}
		if a.Permissions != 0 {
			sa.Options |= vixproto.AttrSetUnixPerms
			sa.Perms = int32(a.Permissions)
		}
		setTimes(sa, &a.GuestFileAttributes)
	case *types.GuestWindowsFileAttributes:
		body.Fault_ = fault(new(types.InvalidArgument))
		return body
	case *types.GuestFileAttributes:
		setTimes(sa, a)
	}
	body.Res, body.Fault_ = empty[types.ChangeFileAttributesInGuestResponse](m.g, req.Vm, req.Auth, vixproto.OpSetFileAttributes, sa.Encode())
	return body
}

func setTimes(sa *vixproto.SetAttrs, a *types.GuestFileAttributes) {
	if a.AccessTime != nil {
		sa.Options |= vixproto.AttrSetAccessDate
		sa.AccessTime = a.AccessTime.Unix()
	}
	if a.ModificationTime != nil {
		sa.Options |= vixproto.AttrSetModifyDate
		sa.ModTime = a.ModificationTime.Unix()
	}
}
