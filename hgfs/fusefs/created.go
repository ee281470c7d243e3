package fusefs

import (
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// Attributes of new files without a GETATTR. After it creates a file,
// directory or symlink, the FS knows its type, size and the permission
// bits it asked for; the host then applies its process umask and makes
// its user the owner. The FS learns both from a GETATTR after the first
// creations (newFileDefaults) and answers later ones from them: the
// kernel gets such attributes with no validity, so a stat right after
// asks the host. The inode number is not known before a GETATTR: the
// new inode gets one of go-fuse's automatic numbers, which a later lookup
// (after the entry expires) replaces by the host's.

// learn records what the host did to a file it created with perm.
func (f *FS) learn(typ, perm uint32, a hgfs.Attr) {
	f.newMu.Lock()
	defer f.newMu.Unlock()
	d := &f.newFiles
	got := a.Perm()
	const need = hgfsproto.AttrValidAllPerms | hgfsproto.AttrValidUserID | hgfsproto.AttrValidGroupID
	if a.Mask&need != need || got&^perm != 0 || (typ == hgfsproto.FileTypeSymlink) {
		// The host added bits (a set-group-ID directory), hides owners or
		// perms, or this is a symlink (always 0777): nothing to learn.
		if typ != hgfsproto.FileTypeSymlink {
			d.known = false
		}
		return
	}
	cleared := perm &^ got
	if d.known && (d.uid != a.UserID || d.gid != a.GroupID || d.cleared&perm != cleared) {
		d.known = false // the host changed its mind: start again
	}
	if !d.known {
		*d = newFileDefaults{known: true, uid: a.UserID, gid: a.GroupID}
	}
	d.tested |= perm
	d.cleared |= cleared
	d.uses = 0
}

// defaultsReady reports whether newAttr could answer for a file of type
// typ created with perm if the parent's attributes were known.
func (f *FS) defaultsReady(typ, perm uint32) bool {
	f.newMu.Lock()
	defer f.newMu.Unlock()
	d := &f.newFiles
	if typ == hgfsproto.FileTypeSymlink {
		return true
	}
	return d.known && perm&^d.tested == 0 && d.uses < recheckEvery
}

// newAttr returns the attributes the host is expected to have given a
// file of type typ it has just created in parent with perm, if the FS
// has learned enough to say.
func (f *FS) newAttr(parent *node, typ, perm uint32, size uint64) (hgfs.Attr, bool) {
	if pa, ok := parent.known(f.attrTimeout); !ok || pa.SpecialPerms&2 != 0 {
		// A set-group-ID parent gives its group (and, to directories,
		// its bit); an unknown parent might be one.
		return hgfs.Attr{}, false
	}
	f.newMu.Lock()
	defer f.newMu.Unlock()
	d := &f.newFiles
	if typ == hgfsproto.FileTypeSymlink {
		perm = 0o777
	} else if !d.known || perm&^d.tested != 0 || d.uses >= recheckEvery {
		return hgfs.Attr{}, false
	}
	if !d.known {
		return hgfs.Attr{}, false
	}
	d.uses++
	now := hgfsproto.NTTime(time.Now())
	a := hgfs.Attr{
		Mask: hgfsproto.AttrValidType | hgfsproto.AttrValidSize | hgfsproto.AttrValidAllTimes |
			hgfsproto.AttrValidAllPerms | hgfsproto.AttrValidUserID | hgfsproto.AttrValidGroupID,
		Type: typ, Size: size, UserID: d.uid, GroupID: d.gid,
		CreationTime: now, AccessTime: now, WriteTime: now, ChangeTime: now,
	}
	if typ != hgfsproto.FileTypeSymlink {
		perm &^= d.cleared
	}
	a.SetPerm(perm)
	return a, true
}
