package fusefs

import (
	"context"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fileHandle is an open file.
type fileHandle struct {
	f      *hgfs.File
	append bool
	// created is when this handle's open created the file.
	created time.Time
}

func accMode(flags uint32) uint32 {
	switch flags & syscall.O_ACCMODE {
	case syscall.O_WRONLY:
		return hgfsproto.OpenModeWriteOnly
	case syscall.O_RDWR:
		return hgfsproto.OpenModeReadWrite
	}
	return hgfsproto.OpenModeReadOnly
}

func writes(flags uint32) bool {
	return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// openFlags maps open(2) flags to the HGFS open disposition, as the C
// client does: O_EXCL counts only with O_CREAT.
func openDisposition(flags uint32) uint32 {
	creat, excl, trunc := flags&syscall.O_CREAT != 0, flags&syscall.O_EXCL != 0, flags&syscall.O_TRUNC != 0
	switch {
	case creat && excl:
		return hgfsproto.OpenFlagCreateSafe
	case creat && trunc:
		return hgfsproto.OpenFlagCreateEmpty
	case creat:
		return hgfsproto.OpenFlagCreate
	case trunc:
		return hgfsproto.OpenFlagOpenEmpty
	}
	return hgfsproto.OpenFlagOpen
}

// fopenFlags chooses the kernel's data caching for a newly opened file:
// cache=none bypasses the page cache; cache=always keeps it; cache=auto
// keeps it only while the host's size and mtime are what they were at
// the previous open.
func (n *node) fopenFlags(a *hgfs.Attr) uint32 {
	switch n.fsys.opts.Cache {
	case CacheNone:
		return fuse.FOPEN_DIRECT_IO
	case CacheAlways:
		return fuse.FOPEN_KEEP_CACHE
	}
	if a == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	same := n.lastSize == a.Size && n.lastMod == a.WriteTime && n.lastMod != 0
	n.lastSize, n.lastMod = a.Size, a.WriteTime
	if same {
		return fuse.FOPEN_KEEP_CACHE
	}
	return 0
}

func (n *node) track(h *fileHandle) {
	n.fsys.openMu.Lock()
	n.fsys.open[h] = struct{}{}
	n.fsys.openMu.Unlock()
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.denied(ctx) {
		return nil, 0, syscall.EACCES
	}
	n.fsys.applyReadahead()
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly && writes(flags) {
		return nil, 0, syscall.EROFS
	}
	p := n.hpath()
	var f *hgfs.File
	for try := 0; ; try++ {
		var err error
		f, err = n.fsys.c.Open(ctx, p, hgfs.OpenFlags{Mode: accMode(flags), Create: openDisposition(flags &^ syscall.O_CREAT)})
		if err == nil {
			break
		}
		if s, ok := hgfs.StatusOf(err); !ok || s != hgfsproto.StatusGenericError {
			return nil, 0, n.errno(err)
		} else if try == 2 {
			return nil, 0, syscall.ELOOP // it keeps turning into a symlink
		}
		// Hosts open with O_NOFOLLOW: a name that is a symlink fails with
		// a generic error; say what it was. If it is not a symlink (any
		// more: something swaps it back and forth), open it again.
		a, _, gerr := n.fsys.c.Getattr(ctx, p)
		if gerr != nil {
			return nil, 0, n.errno(err)
		}
		if a.Type == hgfsproto.FileTypeSymlink {
			return nil, 0, syscall.ELOOP
		}
	}
	h := &fileHandle{f: f, append: flags&syscall.O_APPEND != 0}
	n.track(h)
	var attr *hgfs.Attr
	if n.fsys.opts.Cache == CacheAuto {
		if a, _, err := n.fsys.c.Getattr(ctx, p); err == nil {
			attr = &a
		}
	}
	fl := n.fopenFlags(attr)
	if flags&syscall.O_TRUNC != 0 {
		fl &^= fuse.FOPEN_KEEP_CACHE
		n.invalidate()
	}
	return h, fl, 0
}

// Create is called when the kernel has no entry for name: it asks the
// host to create the file only if it does not exist (OPEN_CREATE_SAFE),
// so that a success proves the file is new and empty and its attributes
// need no GETATTR (see created). If the host has the name after all (the
// kernel's negative entry was stale) and the caller did not ask for
// O_EXCL, the file is opened the way open(2) asked.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.denied(ctx) {
		return nil, nil, 0, syscall.EACCES
	}
	if !hgfsproto.CanonicalName(name) {
		return nil, nil, 0, syscall.EINVAL // it would reach the host as another name
	}
	n.fsys.applyReadahead()
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	p := n.child(name)
	perm := mode & 0o7777
	of := hgfs.OpenFlags{Mode: accMode(flags), Create: hgfsproto.OpenFlagCreateSafe, Perm: perm}
	f, err := n.fsys.c.Open(ctx, p, of)
	isNew := err == nil
	if s, ok := hgfs.StatusOf(err); ok && s == hgfsproto.StatusFileExists && flags&syscall.O_EXCL == 0 {
		of.Create = openDisposition(flags | syscall.O_CREAT)
		f, err = n.fsys.c.Open(ctx, p, of)
	}
	if err != nil {
		n.unsure(err, name)
		if _, ok := n.didCreate(ctx, err, p, hgfsproto.FileTypeRegular); ok {
			// The reply was lost and the file is there: the kernel sent
			// the create because it found no such name, so the request
			// made the file (or opened the one it found). Open it as it
			// is now rather than answer EIO beside the kernel's
			// negative entry, which would say the file is not there.
			of.Create = hgfsproto.OpenFlagOpen
			f, err = n.fsys.c.Open(ctx, p, of)
			isNew = false
		}
		if err != nil {
			return nil, nil, 0, n.errno(err)
		}
	}
	n.nameAdded(name)
	h := &fileHandle{f: f, append: flags&syscall.O_APPEND != 0}
	var child *fs.Inode
	var errno syscall.Errno
	if isNew {
		h.created = time.Now()
		child, errno = n.created(ctx, name, p, hgfsproto.FileTypeRegular, perm, 0, out)
	} else {
		var a hgfs.Attr
		if a, _, err = n.fsys.c.Getattr(ctx, p); err != nil {
			errno = n.errno(err)
		} else {
			child = n.newChild(ctx, name, a, out)
		}
	}
	if errno != 0 {
		f.Close(ctx)
		return nil, nil, 0, errno
	}
	n.track(h)
	var fl uint32
	if n.fsys.opts.Cache == CacheNone {
		fl = fuse.FOPEN_DIRECT_IO
	}
	return child, h, fl, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	h, ok := fh.(*fileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	d, err := h.f.ReadData(ctx, len(dest), off)
	if err != nil {
		return nil, n.errno(err)
	}
	if d.Len() == 0 {
		// go-fuse writes an empty reply without calling Done.
		d.Release()
		return fuse.ReadResultData(nil), 0
	}
	return readResult{d}, 0
}

// readResult hands the data of a read to go-fuse in the reply buffers it
// arrived in: go-fuse writes Slices to /dev/fuse in one writev, with no
// copy into the request's buffer (fuse.ReadResultData would first be
// offered to splice, which it cannot use, and costs a pipe write of the
// header), and calls Done once the reply is written or dropped.
type readResult struct{ d *hgfs.ReadData }

var _ fuse.ReadResult = readResult{}

func (r readResult) Size() int { return r.d.Len() }

// Bytes is the data in one slice: the reply buffer itself when the read
// took one request (as every kernel request of the negotiated size
// does), else copied into buf.
func (r readResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	s := r.d.Slices()
	if len(s) == 1 {
		return s[0], fuse.OK
	}
	buf = buf[:0]
	for _, p := range s {
		buf = append(buf, p...)
	}
	return buf, fuse.OK
}

// Slices is go-fuse's vectored write of a reply.
func (r readResult) Slices() ([][]byte, fuse.Status) { return r.d.Slices(), fuse.OK }

func (r readResult) Done() { r.d.Release() }

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	ctx, cancel := rctx(ctx)
	defer cancel()
	h, ok := fh.(*fileHandle)
	if !ok {
		return 0, syscall.EBADF
	}
	var got int
	var err error
	if h.append {
		// The host appends at its own end of file: no holes from a stale
		// cached size (open-vm-tools PR #801). The kernel's idea of the
		// size is then refreshed.
		got, err = h.f.Append(ctx, data)
		n.invalidate()
	} else {
		got, err = h.f.WriteAt(ctx, data, off)
	}
	if err != nil {
		n.unsure(err)
		return 0, n.errno(err)
	}
	return uint32(got), 0
}

// Flush: every WRITE_V3 is a synchronous host write, so a close has
// nothing to flush. ENOSYS tells the kernel so once (it then treats
// every close as flushed and stops sending FLUSH), which spares each
// close(2) a trip through the daemon.
func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// Fsync: every WRITE_V3 is a synchronous host write.

func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	h, ok := fh.(*fileHandle)
	if !ok {
		return syscall.EBADF
	}
	n.fsys.openMu.Lock()
	delete(n.fsys.open, h)
	n.fsys.openMu.Unlock()
	if err := h.f.Close(context.WithoutCancel(ctx)); err != nil {
		n.fsys.lg.Debug("hgfs close failed", "path", h.f.Path(), "err", err)
	}
	return 0
}

// dirHandle is an open directory: one listing from the host, taken at
// opendir, with each entry's attributes kept for READDIRPLUS.
type dirHandle struct {
	n       *node
	loaded  bool // entries were read (a handle on a kept listing reads them when asked)
	entries []hgfs.DirEntry
	pos     int // index into the listing including "." and ".."
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileLookuper     = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
)

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.denied(ctx) {
		return nil, 0, syscall.EACCES
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	switch n.fsys.opts.Cache {
	case CacheAlways:
		d := &dirHandle{n: n}
		if errno := d.list(ctx); errno != 0 {
			return nil, 0, errno
		}
		return d, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
	case CacheAuto:
		if n.listingFresh() {
			// The kernel keeps the listing it read less than an entry
			// timeout ago; it lists again (through this handle) only if
			// it has dropped it.
			return &dirHandle{n: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
		}
		d := &dirHandle{n: n}
		if errno := d.list(ctx); errno != 0 {
			return nil, 0, errno
		}
		return d, fuse.FOPEN_CACHE_DIR, 0
	}
	d := &dirHandle{n: n}
	if errno := d.list(ctx); errno != 0 {
		return nil, 0, errno
	}
	return d, 0, 0
}

// list reads the directory from the host into the handle, and records
// its names and when.
func (d *dirHandle) list(ctx context.Context) syscall.Errno {
	n := d.n
	entries, err := n.fsys.c.ReadDir(ctx, n.hpath())
	if err != nil {
		return n.errno(err)
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name] = true
	}
	n.setNames(names)
	n.listed()
	d.entries, d.loaded = entries, true
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if !d.loaded {
		rc, cancel := rctx(ctx)
		defer cancel()
		if errno := d.list(rc); errno != 0 {
			return nil, errno
		}
	}
	i := d.pos
	d.pos++
	switch {
	case i == 0:
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: 1, Off: 1}, 0
	case i == 1:
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: 1, Off: 2}, 0
	case i-2 >= len(d.entries):
		d.pos = len(d.entries) + 2
		return nil, 0
	}
	e := d.entries[i-2]
	st := stable(e.Attr)
	return &fuse.DirEntry{Name: e.Name, Mode: st.Mode, Ino: max(st.Ino, 1), Off: uint64(i + 1)}, 0
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.pos = int(min(off, uint64(len(d.entries)+2)))
	return 0
}

// Lookup answers READDIRPLUS from the listing's attributes, with no
// round trip.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	i := d.pos - 3 // the entry just returned
	if i < 0 || i >= len(d.entries) || d.entries[i].Name != name {
		return d.n.Lookup(ctx, name, out)
	}
	a := d.entries[i].Attr
	if a.Mask&hgfsproto.AttrValidSize == 0 {
		return d.n.Lookup(ctx, name, out)
	}
	return d.n.newChild(ctx, name, a, out), 0
}
