package fusefs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FS is one mounted view of the host's shares.
type FS struct {
	c    *hgfs.Client
	base string // HGFS path of the mount's root ("" = all shares)
	opts Options
	lg   *slog.Logger

	openMu sync.Mutex
	open   map[*fileHandle]struct{}
}

// node is a file, directory or symlink; its HGFS path is derived from
// its place in the tree.
type node struct {
	fs.Inode
	fsys *FS

	mu       sync.Mutex
	lastSize uint64 // at the last open, for cache=auto
	lastMod  uint64
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeReader         = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFlusher        = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeReleaser       = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
)

// New returns the root node for a mount of base ("share/sub", or "" for
// every share) and the go-fuse options that go with it.
func New(c *hgfs.Client, base string, opts Options, lg *slog.Logger) (fs.InodeEmbedder, *fs.Options) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	f := &FS{c: c, base: strings.Trim(base, "/"), opts: opts, lg: lg, open: map[*fileHandle]struct{}{}}
	attr, entry := opts.AttrTimeout, opts.EntryTimeout
	switch opts.Cache {
	case CacheNone:
		attr, entry = 0, 0
	case CacheAlways:
		attr, entry = max(attr, time.Hour), max(entry, time.Hour)
	}
	neg := time.Duration(0)
	sizes := c.Sizes()
	maxWrite := opts.MaxWrite
	if maxWrite == 0 {
		maxWrite = sizes.MaxRead
	}
	if opts.MaxRead != 0 {
		maxWrite = min(maxWrite, opts.MaxRead)
	}
	mo := fuse.MountOptions{
		AllowOther:   opts.AllowOther,
		FsName:       opts.FsName,
		Name:         opts.Subtype,
		MaxWrite:     maxWrite,
		DirectMount:  true,
		Debug:        opts.Debug,
		MaxReadAhead: 128 << 10,
		Options:      append([]string(nil), opts.Kernel...),
	}
	if opts.DefaultPermissions {
		mo.Options = append(mo.Options, "default_permissions")
	}
	if opts.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	return &node{fsys: f}, &fs.Options{
		MountOptions:    mo,
		AttrTimeout:     &attr,
		EntryTimeout:    &entry,
		NegativeTimeout: &neg,
	}
}

// RequestTimeout bounds every HGFS request of a FUSE operation, so one
// stuck host request cannot wedge the mount.
const RequestTimeout = 60 * time.Second

// rctx is the context of the HGFS requests of one FUSE operation. The
// kernel interrupts requests whenever the calling thread gets a signal
// (Go programs get them all the time); abandoning a short host request
// then would turn ordinary calls into EINTR, so requests run to
// completion, bounded by RequestTimeout.
func rctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
}

// hpath is the node's HGFS path: the mount's base, then each component
// unescaped back to the host's name.
func (n *node) hpath() string {
	rel := n.Path(nil)
	if rel == "" {
		return n.fsys.base
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		parts[i] = hgfsproto.Unescape(p)
	}
	return hgfs.Join(n.fsys.base, strings.Join(parts, "/"))
}

func (n *node) child(name string) string { return hgfs.Join(n.hpath(), hgfsproto.Unescape(name)) }

// errno maps a client error for the kernel, logging failures that are
// not ordinary file-system answers.
func (n *node) errno(err error) syscall.Errno {
	e := hgfs.Errno(err)
	if e == syscall.EIO {
		n.fsys.lg.Warn("hgfs request failed", "err", err)
	}
	return e
}

// fill converts host attributes to kernel attributes, applying the
// ownership and mask options.
func (f *FS) fill(a hgfs.Attr, out *fuse.Attr) {
	var typ uint32
	switch a.Type {
	case hgfsproto.FileTypeDirectory:
		typ = syscall.S_IFDIR
	case hgfsproto.FileTypeSymlink:
		typ = syscall.S_IFLNK
	default:
		typ = syscall.S_IFREG
	}
	perm := a.Perm() &^ f.opts.Umask
	if typ == syscall.S_IFDIR {
		perm &^= f.opts.Dmask
	} else {
		perm &^= f.opts.Fmask
	}
	out.Mode = typ | perm
	out.Size = a.Size
	if a.Mask&hgfsproto.AttrValidAllocationSize != 0 {
		out.Blocks = (a.AllocationSize + 511) / 512
	} else {
		out.Blocks = (a.Size + 511) / 512
	}
	out.Blksize = 4096
	out.Nlink = 1
	if a.Mask&hgfsproto.AttrValidFileID != 0 {
		out.Ino = a.HostFileID
	}
	if a.Mask&hgfsproto.AttrValidUserID != 0 {
		out.Uid = a.UserID
	}
	if a.Mask&hgfsproto.AttrValidGroupID != 0 {
		out.Gid = a.GroupID
	}
	if f.opts.UID != nil {
		out.Uid = *f.opts.UID
	}
	if f.opts.GID != nil {
		out.Gid = *f.opts.GID
	}
	at, mt, ct := a.Times()
	out.SetTimes(&at, &mt, &ct)
}

func stable(a hgfs.Attr) fs.StableAttr {
	st := fs.StableAttr{Mode: syscall.S_IFREG}
	switch a.Type {
	case hgfsproto.FileTypeDirectory:
		st.Mode = syscall.S_IFDIR
	case hgfsproto.FileTypeSymlink:
		st.Mode = syscall.S_IFLNK
	}
	if a.Mask&hgfsproto.AttrValidFileID != 0 {
		st.Ino = a.HostFileID
	}
	return st
}

// newChild makes (or finds) the inode for a child with attributes a.
func (n *node) newChild(ctx context.Context, a hgfs.Attr, out *fuse.EntryOut) *fs.Inode {
	n.fsys.fill(a, &out.Attr)
	return n.NewInode(ctx, &node{fsys: n.fsys}, stable(a))
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if len(name) > hgfsproto.NameMax {
		return nil, syscall.ENAMETOOLONG
	}
	a, _, err := n.fsys.c.Getattr(ctx, n.child(name))
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, a, out), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	a, _, err := n.fsys.c.Getattr(ctx, n.hpath())
	if err != nil {
		return n.errno(err)
	}
	if n.IsRoot() {
		// The root's type is fixed by the kernel; never mind the host.
	} else if stable(a).Mode != n.StableAttr().Mode {
		// The host replaced this name with another kind of file: this
		// inode is stale and must not take the new file's attributes.
		return syscall.EIO
	}
	n.fsys.fill(a, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	var s hgfs.SetAttr
	if m, ok := in.GetMode(); ok {
		s.Mode = &m
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	// With uid=/gid= the mount shows every file as the mapped owner;
	// chown to that owner is what every file already is, so it is not
	// sent (the host would refuse it). Other ids go to the host.
	if uok && (n.fsys.opts.UID == nil || uid != *n.fsys.opts.UID) {
		s.UID = &uid
	}
	if gok && (n.fsys.opts.GID == nil || gid != *n.fsys.opts.GID) {
		s.GID = &gid
	}
	size, sizeOK := in.GetSize()
	if sizeOK {
		s.Size = &size
	}
	now := time.Time{} // zero: the host's clock
	if in.Valid&fuse.FATTR_ATIME != 0 {
		if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
			s.Atime = &now
		} else if t, ok := in.GetATime(); ok {
			s.Atime = &t
		}
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			s.Mtime = &now
		} else if t, ok := in.GetMTime(); ok {
			s.Mtime = &t
		}
	}
	if err := n.fsys.c.Setattr(ctx, n.hpath(), s); err != nil {
		return n.errno(err)
	}
	if sizeOK {
		n.invalidate()
	}
	return n.Getattr(ctx, fh, out)
}

// invalidate drops the kernel's cached data and attributes of the node.
// It runs asynchronously: a notification sent while the kernel waits for
// this node's request could deadlock.
func (n *node) invalidate() {
	go n.NotifyContent(0, 0)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	a, target, err := n.fsys.c.Getattr(ctx, n.hpath())
	if err != nil {
		return nil, n.errno(err)
	}
	if a.Type != hgfsproto.FileTypeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(target), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	free, total, err := n.fsys.c.Statfs(ctx, n.hpath())
	if err != nil {
		return n.errno(err)
	}
	const bsize = 4096
	out.Bsize, out.Frsize = bsize, bsize
	out.Blocks = (total + bsize - 1) / bsize
	out.Bfree = (free + bsize - 1) / bsize
	out.Bavail = out.Bfree
	out.NameLen = hgfsproto.NameMax
	return 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	if err := n.fsys.c.Mkdir(ctx, p, mode&0o7777); err != nil {
		return nil, n.errno(err)
	}
	a, _, err := n.fsys.c.Getattr(ctx, p)
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, a, out), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	if err := n.fsys.c.Symlink(ctx, target, p); err != nil {
		return nil, n.errno(err)
	}
	a, _, err := n.fsys.c.Getattr(ctx, p)
	if err != nil {
		return nil, n.errno(err)
	}
	return n.newChild(ctx, a, out), 0
}

// Link: HGFS V3 has no hard links.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	return n.errno(n.fsys.c.Remove(ctx, n.child(name)))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	return n.errno(n.fsys.c.Rmdir(ctx, n.child(name)))
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and whiteouts have no HGFS form
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	src, dst := n.child(name), np.child(newName)
	if err := n.fsys.c.Rename(ctx, src, dst, flags&unix.RENAME_NOREPLACE != 0); err != nil {
		return n.errno(err)
	}
	// Open files of the moved node (and below it) reopen by the new path
	// if the host forgets their handles.
	if child := n.GetChild(name); child != nil {
		n.fsys.renamed(child, src, dst)
	}
	return 0
}

// renamed updates the reopen paths of open files at or below a renamed
// node.
func (f *FS) renamed(in *fs.Inode, src, dst string) {
	f.openMu.Lock()
	defer f.openMu.Unlock()
	for h := range f.open {
		p := h.f.Path()
		if p == src || strings.HasPrefix(p, src+"/") {
			h.f.SetPath(dst + strings.TrimPrefix(p, src))
		}
	}
}
