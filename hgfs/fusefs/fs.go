package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// mounter is the uid that mounted; with allow_root only it and root
	// are served.
	mounter uint32
	lg      *slog.Logger
	// attrTimeout, entryTimeout and negTimeout are the effective kernel
	// timeouts.
	attrTimeout, entryTimeout, negTimeout time.Duration

	openMu sync.Mutex
	open   map[*fileHandle]struct{}

	// bg runs background work (storm listings) until bgCtx ends (Stop).
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// lookupNS is how long a lookup that asks the host takes, lately
	// (storm.go).
	lookupNS atomic.Int64
	// forgetBefore (unix nanoseconds) is when the FS last dropped what it
	// had learned of the host's names (a share found missing, a new
	// session); seenGen is the client's session generation then, and
	// shareGone is set while a share is known to be missing (missed.go).
	forgetBefore atomic.Int64
	seenGen      atomic.Uint64
	shareGone    atomic.Bool

	// newMu guards newFiles: what the host gives a file or directory it
	// creates for us (its umask, its owner), learned from the first
	// creation and checked again now and then, so later creations need
	// no GETATTR.
	newMu    sync.Mutex
	newFiles newFileDefaults

	// ra sets the mount's readahead once: after the mount, and before
	// the first open is answered (see applyReadahead).
	ra    sync.Once
	raKB  int
	raErr error
}

// newFileDefaults is what the host does to a file it creates for us.
type newFileDefaults struct {
	known    bool
	tested   uint32 // permission bits asked for in the creations seen
	cleared  uint32 // those of them the host cleared (its umask)
	uid, gid uint32
	uses     int // creations answered from these since the last check
}

// recheckEvery is how many creations are answered from learned defaults
// before one is checked against the host again.
const recheckEvery = 256

// node is a file, directory or symlink; its HGFS path is derived from
// its place in the tree.
type node struct {
	fs.Inode
	fsys *FS
	// hostIno is set when the inode number is the host's file ID.
	hostIno bool

	mu       sync.Mutex
	lastSize uint64 // at the last open, for cache=auto
	lastMod  uint64
	// attr is what we last learned of the node's attributes (from a
	// reply of the host, or derived from a change of ours) and attrAt
	// when; zero when unknown.
	attr   hgfs.Attr
	attrAt time.Time
	// names, for a directory, is every name it held at namesAt as far as
	// we know: it was created empty by us, or listed in full, and every
	// change through this mount since was applied. Within the negative
	// timeout a lookup of any other name is answered ENOENT without
	// asking the host, like a negative dentry the kernel would cache.
	names   map[string]bool
	folded  map[string]int // names lower-cased, with counts
	namesAt time.Time
	// listedAt is when the directory was last listed in full and
	// listedMod its modification and change times then, if known; zero
	// after a change of ours in it.
	listedAt           time.Time
	listedMod, listedC uint64
	// found counts, for a directory, the lookups in a row that asked the
	// host and found the name, the first at foundAt; storm is the listing
	// they set off when they came as a storm (storm.go).
	found   int
	foundAt time.Time
	storm   *storm
	// gone is set when this node's name was removed or renamed over
	// through this mount: its path now names nothing or another file,
	// so the kernel's open descriptors of it (fstat on a directory
	// renamed over) are answered from what was last known, as a host
	// answers fstat on a deleted file, and never by that path.
	gone bool
	// missed holds, for a directory, the names the host lately did not
	// find, with when (missed.go).
	missed map[string]time.Time
}

// markGone records that n's name no longer leads to n.
func (n *node) markGone() {
	n.mu.Lock()
	n.gone = true
	n.mu.Unlock()
}

// goneAttr returns, for a gone node, its last known attributes.
func (n *node) goneAttr() (a hgfs.Attr, known, gone bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr, !n.attrAt.IsZero(), n.gone
}

// goneChild marks the node the kernel holds for name, if any, gone.
func (n *node) goneChild(name string) {
	if c := n.GetChild(name); c != nil {
		if cn, ok := c.Operations().(*node); ok {
			cn.markGone()
		}
	}
}

// listed records a full listing taken now.
func (n *node) listed() {
	n.mu.Lock()
	n.listedAt, n.listedMod, n.listedC = time.Now(), 0, 0
	if !n.attrAt.IsZero() && time.Since(n.attrAt) < n.fsys.attrTimeout {
		n.listedMod, n.listedC = n.attr.WriteTime, n.attr.ChangeTime
	}
	n.mu.Unlock()
}

// listingFresh reports whether the kernel may keep the directory listing
// it read last: it is younger than the entry timeout (as the entries it
// made are), nothing was changed in the directory through this mount
// since, and the directory's times, if known now, are those it had then.
func (n *node) listingFresh() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listedAt.IsZero() || time.Since(n.listedAt) >= n.fsys.entryTimeout || !n.fsys.learnedFresh(n.listedAt) {
		return false
	}
	if !n.attrAt.IsZero() && time.Since(n.attrAt) < n.fsys.attrTimeout && n.attrAt.After(n.listedAt) &&
		(n.attr.WriteTime != n.listedMod || n.attr.ChangeTime != n.listedC) {
		return false
	}
	return true
}

// remember records attributes learned now.
func (n *node) remember(a hgfs.Attr) { n.rememberAt(a, time.Now()) }

// rememberAt records attributes the host reported at t.
func (n *node) rememberAt(a hgfs.Attr, t time.Time) {
	n.mu.Lock()
	n.attr, n.attrAt = a, t
	n.mu.Unlock()
}

// known returns the attributes learned within maxAge.
func (n *node) known(maxAge time.Duration) (hgfs.Attr, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.attrAt.IsZero() || time.Since(n.attrAt) > maxAge {
		return hgfs.Attr{}, false
	}
	return n.attr, true
}

// setNames records that the directory holds exactly names (host names).
func (n *node) setNames(names map[string]bool) { n.setNamesAt(names, time.Now()) }

// setNamesAt records that the directory held exactly names at t, unless
// what the node knows is newer.
func (n *node) setNamesAt(names map[string]bool, t time.Time) {
	folded := make(map[string]int, len(names))
	for name := range names {
		folded[strings.ToLower(name)]++
	}
	n.mu.Lock()
	if n.names == nil || !n.namesAt.After(t) {
		n.names, n.folded, n.namesAt = names, folded, t
	}
	n.mu.Unlock()
}

// nameAdded and nameRemoved keep the known name set current with our own
// changes.
func (n *node) nameAdded(name string) {
	n.mu.Lock()
	n.listedAt = time.Time{}
	delete(n.missed, name)
	if n.names != nil && !n.names[name] {
		n.names[name] = true
		n.folded[strings.ToLower(name)]++
	}
	n.mu.Unlock()
	n.stormChanged(name, true)
}

func (n *node) nameRemoved(name string) {
	n.mu.Lock()
	n.listedAt = time.Time{}
	if n.names != nil && n.names[name] {
		delete(n.names, name)
		if k := strings.ToLower(name); n.folded[k] <= 1 {
			delete(n.folded, k)
		} else {
			n.folded[k]--
		}
	}
	n.mu.Unlock()
	n.stormChanged(name, false)
}

// surelyAbsent reports whether name (a host name) is known not to exist
// in the directory, from a name set younger than the negative timeout.
// Hosts may match names without regard to case (Windows, macOS) or
// Unicode normalization (macOS): a name that differs from a known one
// only in case counts as present, and a name that is not plain ASCII is
// always asked for.
func (n *node) surelyAbsent(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return false
		}
	}
	neg := n.fsys.negTimeout
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil || neg <= 0 || time.Since(n.namesAt) > neg || !n.fsys.learnedFresh(n.namesAt) {
		n.names, n.folded = nil, nil
		return false
	}
	return n.folded[strings.ToLower(name)] == 0
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
	f := &FS{c: c, base: strings.Trim(base, "/"), opts: opts, lg: lg, open: map[*fileHandle]struct{}{}, mounter: uint32(os.Getuid())}
	if (opts.AllowOther || opts.AllowRoot) && opts.UnsafeNoPermissions && !opts.DefaultPermissions {
		lg.Warn("permission checks are off: every local user who can reach the mount can read, change and delete its files", "option", UnsafeNoPermissionsOption)
	}
	f.bgCtx, f.bgCancel = context.WithCancel(context.Background())
	f.seenGen.Store(c.Generation())
	attr, entry := opts.AttrTimeout, opts.EntryTimeout
	switch opts.Cache {
	case CacheNone:
		attr, entry = 0, 0
	case CacheAlways:
		attr, entry = max(attr, time.Hour), max(entry, time.Hour)
	}
	// Names that do not exist are cached as long as names that do.
	neg := entry
	f.attrTimeout, f.entryTimeout, f.negTimeout = attr, entry, neg
	sizes := c.Sizes()
	maxWrite := opts.MaxWrite
	if maxWrite == 0 {
		// One READ_V3 of the host's largest size per kernel request (go-fuse
		// sets max_read to this too); a kernel write of it is sent as
		// equal WRITE_V3s under the VMX's 64 KiB message cap (8 of 65,024
		// bytes for 520,192), so a 1 MiB write(2) costs 8 + 8 + 1.
		maxWrite = sizes.MaxRead
	}
	if opts.MaxRead != 0 {
		maxWrite = min(maxWrite, opts.MaxRead)
	}
	f.raKB = opts.Readahead
	if f.raKB == ReadaheadAuto {
		f.raKB = 2 * maxWrite / 1024
	}
	mo := fuse.MountOptions{
		// allow_root needs the kernel's allow_other; the requests of
		// other users are then refused here (callerAllowed).
		AllowOther:   opts.AllowOther || opts.AllowRoot,
		FsName:       opts.FsName,
		Name:         opts.Subtype,
		MaxWrite:     maxWrite,
		DirectMount:  true,
		Debug:        opts.Debug,
		MaxReadAhead: 128 << 10,
		Options:      append([]string(nil), opts.Kernel...),
		// The host applies its own rules for set-user-ID and set-group-ID
		// bits on chown, write and truncate; without this capability the
		// kernel asks for the attributes before every chown to clear them
		// itself.
		ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV,
	}
	if opts.Permissions() {
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

// Stop ends the background work of the file system whose root New
// returned (listings set off by lookup storms) and waits for it. Call it
// once the mount is no longer served, before closing the client.
func Stop(root fs.InodeEmbedder) {
	if n, ok := root.(*node); ok {
		n.fsys.bgCancel()
		n.fsys.bg.Wait()
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

// hpath is the node's HGFS path: the mount's base, then the names as the
// mount shows them (escaped; the client unescapes each component for the
// wire, so "a!%b" is the host's "a/b", one name).
func (n *node) hpath() string {
	return hgfs.Join(n.fsys.base, n.Path(nil))
}

func (n *node) child(name string) string { return hgfs.Join(n.hpath(), name) }

// errno maps a client error for the kernel, logging failures that are
// not ordinary file-system answers.
func (n *node) errno(err error) syscall.Errno {
	e := hgfs.Errno(err)
	var te *hgfs.TransportError
	if e == syscall.EIO && !errors.As(err, &te) && !errors.Is(err, hgfs.ErrMalformed) {
		// Transport failures are logged once per outage, and malformed
		// replies once each, by the client.
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

// newChild makes (or finds) the inode for the child name with
// attributes a, and remembers them.
func (n *node) newChild(ctx context.Context, name string, a hgfs.Attr, out *fuse.EntryOut) *fs.Inode {
	return n.newChildAt(ctx, name, a, time.Now(), out)
}

// newChildAt is newChild for attributes the host reported at t.
func (n *node) newChildAt(ctx context.Context, name string, a hgfs.Attr, t time.Time, out *fuse.EntryOut) *fs.Inode {
	n.fsys.fill(a, &out.Attr)
	if old := n.GetChild(name); old != nil {
		if on, ok := old.Operations().(*node); ok && old.StableAttr().Mode == stable(a).Mode {
			on.rememberAt(a, t)
			if !on.hostIno {
				// The inode was made without the host's file ID (a file
				// or directory this mount created, answered from learned
				// defaults) and has one of go-fuse's numbers: it is the
				// same object. A new inode would make the kernel drop the
				// entry and everything below it, and a process whose
				// working directory it is could no longer name it
				// (getcwd: ENOENT, git's "unable to get current working
				// directory").
				return old
			}
		}
	}
	child := &node{fsys: n.fsys, hostIno: a.Mask&hgfsproto.AttrValidFileID != 0}
	child.rememberAt(a, t)
	ino := n.NewInode(ctx, child, stable(a))
	if on, ok := ino.Operations().(*node); ok && on != child {
		// The kernel still held an inode of this number (a host that
		// reuses file ids): it is found by a name again.
		on.mu.Lock()
		on.gone = false
		on.mu.Unlock()
		on.rememberAt(a, t)
	}
	return ino
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.denied(ctx) {
		return nil, syscall.EACCES
	}
	if !hgfsproto.CanonicalName(name) {
		return nil, syscall.ENOENT // no host name is shown as it (see Escape)
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if len(name) > hgfsproto.NameMax {
		return nil, syscall.ENAMETOOLONG
	}
	hname := name
	if n.shareLevel() {
		// The host's virtual root: share names come and go with the
		// host's configuration (a share disabled for a while), so none
		// is taken as absent for longer than this one answer.
		return n.lookupShare(ctx, name, out)
	}
	if n.surelyAbsent(hname) {
		return nil, syscall.ENOENT
	}
	// A name whose inode the kernel holds is being checked again: its
	// node knows more than a listing, and it makes no storm.
	known := n.GetChild(name) != nil
	var e stormEntry
	ok := false
	if !known {
		e, ok = n.fromStorm(ctx, hname)
		if !ok && n.stormDue() {
			// This lookup set a listing off: the name may come with it.
			e, ok = n.fromStorm(ctx, hname)
		}
	}
	if ok {
		// Answered from a listing: the kernel keeps it for what is
		// left of the timeouts since the entry came.
		age := time.Since(e.at)
		ch := n.newChildAt(ctx, name, e.attr, e.at, out)
		out.SetEntryTimeout(max(n.fsys.entryTimeout-age, time.Nanosecond))
		out.SetAttrTimeout(max(n.fsys.attrTimeout-age, time.Nanosecond))
		return ch, 0
	}
	if n.surelyAbsent(hname) {
		return nil, syscall.ENOENT // a listing has just completed without it
	}
	start := time.Now()
	a, _, err := n.fsys.c.Getattr(ctx, n.child(name))
	n.fsys.timedLookup(time.Since(start))
	if !known {
		n.hostFound(err == nil)
	}
	if err != nil {
		errno := n.errno(err)
		if errno == syscall.ENOENT && !n.keepNotFound(ctx, name) {
			uncachedENOENT(out)
		}
		return nil, errno
	}
	return n.newChild(ctx, name, a, out), 0
}

// keepNotFound decides whether the host's "not found" for name, just
// answered, may stay in the kernel as a negative entry: only for a name
// not found lately too, and with its share seen present after the answer
// (missed.go). It records the answer either way.
func (n *node) keepNotFound(ctx context.Context, name string) bool {
	again := n.recentlyMissed(name)
	n.miss(name)
	return again && n.fsys.sharePresent(ctx, n.child(name))
}

// shareLevel reports whether n is the host's virtual root (the root of a
// mount of every share), whose children are the shares.
func (n *node) shareLevel() bool { return n.fsys.base == "" && n.IsRoot() }

// lookupShare looks a share up in the virtual root: always on the host
// (no listing or storm answers for it).
func (n *node) lookupShare(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, _, err := n.fsys.c.Getattr(ctx, n.child(name))
	if err != nil {
		errno := n.errno(err)
		if errno == syscall.ENOENT {
			uncachedENOENT(out)
		}
		return nil, errno
	}
	return n.newChild(ctx, name, a, out), 0
}

// uncachedENOENT makes a lookup's ENOENT reach the kernel as the error
// itself rather than as a negative entry: the kernel then keeps no
// negative dentry (fuse_lookup invalidates the entry of a -ENOENT reply),
// and the next lookup of the name asks again. go-fuse turns ENOENT into a
// negative entry with the mount's negative timeout only when the lookup
// left the entry timeout at zero; the timeout set here is not sent (the
// reply is an error).
func uncachedENOENT(out *fuse.EntryOut) { out.SetEntryTimeout(time.Nanosecond) }

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.denied(ctx) {
		return syscall.EACCES
	}
	if a, known, gone := n.goneAttr(); gone {
		if !known {
			return syscall.ENOENT
		}
		n.fsys.fill(a, &out.Attr)
		out.Nlink = 0
		return 0
	}
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
	n.remember(a)
	n.fsys.fill(a, &out.Attr)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.denied(ctx) {
		return syscall.EACCES
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if _, _, gone := n.goneAttr(); gone {
		return syscall.ENOENT // its path is another file's now
	}
	base, haveBase := n.known(n.fsys.attrTimeout)
	var s hgfs.SetAttr
	if m, ok := in.GetMode(); ok {
		s.Mode = &m
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	// With uid=/gid= the mount shows every file as the mapped owner;
	// chown to that owner is what every file already is, so it is not
	// sent (the host would refuse it). Other ids go to the host, unless
	// the file already has them (and no set-id bit a chown would clear).
	noSetID := haveBase && base.SpecialPerms&6 == 0
	if uok && (n.fsys.opts.UID == nil || uid != *n.fsys.opts.UID) &&
		!(noSetID && base.Mask&hgfsproto.AttrValidUserID != 0 && base.UserID == uid) {
		s.UID = &uid
	}
	if gok && (n.fsys.opts.GID == nil || gid != *n.fsys.opts.GID) &&
		!(noSetID && base.Mask&hgfsproto.AttrValidGroupID != 0 && base.GroupID == gid) {
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
	// touch(1) on a file this handle has just created: the host set
	// both times to its "now" a moment ago.
	if h, ok := fh.(*fileHandle); ok && !h.created.IsZero() && time.Since(h.created) < touchWindow &&
		s.Mode == nil && s.UID == nil && s.GID == nil && s.Size == nil &&
		(s.Atime == nil || s.Atime.IsZero()) && (s.Mtime == nil || s.Mtime.IsZero()) {
		s.Atime, s.Mtime = nil, nil
	}
	if err := n.fsys.c.Setattr(ctx, n.hpath(), s); err != nil {
		n.unsure(err)
		return n.errno(err)
	}
	if sizeOK {
		n.invalidate()
	}
	if !haveBase {
		return n.Getattr(ctx, fh, out)
	}
	// The attributes after the change, without asking: the kernel gets
	// them with no validity, so the next stat asks the host.
	a := base
	t := time.Now()
	if s.Mode != nil {
		a.SetPerm(*s.Mode)
	}
	if uok {
		a.UserID = uid
	}
	if gok {
		a.GroupID = gid
	}
	if sizeOK {
		a.Size = size
	}
	if in.Valid&fuse.FATTR_ATIME != 0 {
		a.AccessTime = hgfsproto.NTTime(t)
		if at, ok := in.GetATime(); ok && in.Valid&fuse.FATTR_ATIME_NOW == 0 {
			a.AccessTime = hgfsproto.NTTime(at)
		}
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		a.WriteTime = hgfsproto.NTTime(t)
		if mt, ok := in.GetMTime(); ok && in.Valid&fuse.FATTR_MTIME_NOW == 0 {
			a.WriteTime = hgfsproto.NTTime(mt)
		}
	}
	a.ChangeTime = hgfsproto.NTTime(t)
	n.remember(a)
	n.fsys.fill(a, &out.Attr)
	return 0
}

// touchWindow is how soon after creating a file a "set both times to
// now" is taken as already done by the creation.
const touchWindow = 100 * time.Millisecond

// invalidate drops the kernel's cached data and attributes of the node.
// It runs asynchronously: a notification sent while the kernel waits for
// this node's request could deadlock.
func (n *node) invalidate() {
	go n.NotifyContent(0, 0)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.denied(ctx) {
		return nil, syscall.EACCES
	}
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
	if n.denied(ctx) {
		return syscall.EACCES
	}
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
	if n.denied(ctx) {
		return nil, syscall.EACCES
	}
	if !hgfsproto.CanonicalName(name) {
		return nil, syscall.EINVAL
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	perm := mode & 0o7777
	if err := n.fsys.c.Mkdir(ctx, p, perm); err != nil {
		n.unsure(err, name)
		if a, ok := n.didCreate(ctx, err, p, hgfsproto.FileTypeDirectory); ok {
			// The reply was lost, the directory was made: say so, rather
			// than EIO and a negative entry the kernel still holds.
			n.nameAdded(name)
			return n.newChild(ctx, name, a, out), 0
		}
		return nil, n.errno(err)
	}
	n.nameAdded(name)
	ch, errno := n.created(ctx, name, p, hgfsproto.FileTypeDirectory, perm, 0, out)
	if errno == 0 {
		// A directory we have just created holds nothing.
		ch.Operations().(*node).setNames(map[string]bool{})
	}
	return ch, errno
}

// created makes the inode of a file, directory or symlink this mount has
// just created at p: with the attributes the host is known to give new
// files when it has shown them before (no GETATTR, and no validity, so
// the next stat asks), else with the host's answer to a GETATTR, which
// teaches the FS what the host does.
//
// When only the parent's attributes are missing (older than the
// attribute timeout: a burst of creations outlasts it), they are asked
// for instead, one GETATTR of the directory per attribute timeout rather
// than one per new file.
func (n *node) created(ctx context.Context, name, p string, typ uint32, perm uint32, size uint64, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, ok := n.fsys.newAttr(n, typ, perm, size)
	if !ok && n.fsys.attrTimeout > 0 && n.fsys.defaultsReady(typ, perm) {
		if _, fresh := n.known(n.fsys.attrTimeout); !fresh {
			if pa, _, err := n.fsys.c.Getattr(ctx, n.hpath()); err == nil {
				n.remember(pa)
				a, ok = n.fsys.newAttr(n, typ, perm, size)
			}
		}
	}
	if ok {
		ch := n.newChild(ctx, name, a, out)
		out.SetAttrTimeout(time.Nanosecond)
		return ch, 0
	}
	a, _, err := n.fsys.c.Getattr(ctx, p)
	if err != nil {
		return nil, n.errno(err)
	}
	n.fsys.learn(typ, perm, a)
	return n.newChild(ctx, name, a, out), 0
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.denied(ctx) {
		return nil, syscall.EACCES
	}
	if !hgfsproto.CanonicalName(name) {
		return nil, syscall.EINVAL
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	p := n.child(name)
	if err := n.fsys.c.Symlink(ctx, target, p); err != nil {
		n.unsure(err, name)
		return nil, n.errno(err)
	}
	n.nameAdded(name)
	return n.created(ctx, name, p, hgfsproto.FileTypeSymlink, 0o777, uint64(len(target)), out)
}

// Link: HGFS V3 has no hard links.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.denied(ctx) {
		return syscall.EACCES
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if err := n.fsys.c.Remove(ctx, n.child(name)); err != nil {
		n.unsure(err, name)
		if !n.didRemove(ctx, err, n.child(name)) {
			return n.errno(err)
		}
	}
	n.goneChild(name)
	n.nameRemoved(name)
	return 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.denied(ctx) {
		return syscall.EACCES
	}
	ctx, cancel := rctx(ctx)
	defer cancel()
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if err := n.fsys.c.Rmdir(ctx, n.child(name)); err != nil {
		n.unsure(err, name)
		if !n.didRemove(ctx, err, n.child(name)) {
			return n.errno(err)
		}
	}
	n.goneChild(name)
	n.nameRemoved(name)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.denied(ctx) {
		return syscall.EACCES
	}
	if !hgfsproto.CanonicalName(newName) {
		return syscall.EINVAL
	}
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
	victim := np.GetChild(newName)
	if victim != nil && victim == n.GetChild(name) {
		victim = nil // renamed onto itself
	}
	if err := n.fsys.c.Rename(ctx, src, dst, flags&unix.RENAME_NOREPLACE != 0); err != nil {
		n.unsure(err, name)
		np.unsure(err, newName)
		if !n.didRename(ctx, err, src, dst) {
			return n.errno(err)
		}
	}
	if victim != nil {
		if vn, ok := victim.Operations().(*node); ok {
			vn.markGone()
		}
	}
	n.nameRemoved(name)
	np.nameAdded(newName)
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

// applyReadahead sets the mount's readahead (Options.Readahead) once.
// Open and Create call it before they answer: the kernel copies the
// readahead into a file's state when the open returns from the file
// system, so a file opened before the readahead is set reads 128 KiB per
// request for as long as it stays open. The kernel's INIT handshake
// cannot raise it (the kernel keeps the smaller of its default and the
// reply's), and an observer may use the mount as soon as it shows in
// mountinfo, before the mounting program gets to set it.
func (f *FS) applyReadahead() error {
	f.ra.Do(func() {
		if f.opts.Mountpoint == "" || f.raKB <= 0 {
			return
		}
		f.raErr = SetReadahead(f.opts.Mountpoint, f.raKB)
		if f.raErr != nil {
			f.lg.Info("cannot set the mount's readahead; sequential reads use the kernel's 128 KiB requests", "readaheadKiB", f.raKB, "err", f.raErr)
		}
	})
	return f.raErr
}

// ApplyReadahead sets the readahead of the mount whose root New returned,
// at Options.Mountpoint, unless an open has already done so; call it
// right after mounting. The error is also logged once.
func ApplyReadahead(root fs.InodeEmbedder) error {
	if n, ok := root.(*node); ok {
		return n.fsys.applyReadahead()
	}
	return nil
}

// ReadaheadAuto makes the kernel readahead two of the mount's largest
// READ requests (508 KiB each with the sizes hosts negotiate), so
// sequential reads cost one round trip per 508 KiB instead of one per
// 128 KiB, the kernel's default for FUSE.
const ReadaheadAuto = -1

// SetReadahead sets the kernel readahead of the mount at mountpoint to kb
// KiB (the read_ahead_kb of its backing device in sysfs, as gcsfuse's
// --max-read-ahead-kb does). It needs root; kb 0 leaves the kernel's
// default. The device number comes from /proc/self/mountinfo: a stat of
// the mount point would cost the new mount a GETATTR round trip.
func SetReadahead(mountpoint string, kb int) error {
	if kb <= 0 {
		return nil
	}
	// No stat of the mount point as a fallback: called while the mount
	// answers an open, it could wait on the mount itself.
	dev, err := mountDevice(mountpoint)
	if err != nil {
		return err
	}
	return os.WriteFile("/sys/class/bdi/"+dev+"/read_ahead_kb", []byte(strconv.Itoa(kb)), 0)
}

// mountDevice returns "MAJOR:MINOR" of the last mount at mountpoint, from
// /proc/self/mountinfo.
func mountDevice(mountpoint string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	dev := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...; spaces and the like
		// in paths are octal escapes.
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == abs {
			dev = f[2]
		}
	}
	if dev == "" {
		return "", fmt.Errorf("%s is not in /proc/self/mountinfo", abs)
	}
	return dev, nil
}

// unescapeMountinfo undoes the \ooo escapes of a mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// denied reports whether the caller of a request may not use the mount:
// with allow_root only root and the mounting user may (the kernel's
// allow_other lets everyone through, as libfuse's allow_root does).
func (n *node) denied(ctx context.Context) bool {
	f := n.fsys
	if !f.opts.AllowRoot || f.opts.AllowOther {
		return false
	}
	c, ok := fuse.FromContext(ctx)
	return ok && c.Uid != 0 && c.Uid != f.mounter
}

// unsure handles a failed request whose outcome is unknown (no reply, or
// a malformed one; hgfs.Uncertain): the host may have carried it out, so
// everything it could have changed is forgotten, here and in the kernel.
// For the directory n: its known names and listing, and the entries of
// names (what the request created, removed or renamed); for each
// existing child of those names, and for n itself when names is empty
// (a setattr or write), the attributes and cached data. The kernel is
// told in the background: a notification sent while the kernel waits
// for this request could deadlock on the locks it holds.
func (n *node) unsure(err error, names ...string) {
	if !hgfs.Uncertain(err) {
		return
	}
	forgetAttr := func(c *node) {
		c.mu.Lock()
		c.attr, c.attrAt = hgfs.Attr{}, time.Time{}
		c.lastSize, c.lastMod = 0, 0
		c.mu.Unlock()
	}
	if len(names) == 0 {
		forgetAttr(n)
		n.fsys.bg.Go(func() { n.NotifyContent(0, 0) })
		return
	}
	n.mu.Lock()
	n.names, n.folded, n.namesAt = nil, nil, time.Time{}
	n.listedAt = time.Time{}
	clear(n.missed)
	n.mu.Unlock()
	forgetAttr(n)
	for _, name := range names {
		n.stormForget(name)
		if ch := n.GetChild(name); ch != nil {
			c := ch.Operations().(*node)
			forgetAttr(c)
			c.mu.Lock()
			c.names, c.folded, c.listedAt = nil, nil, time.Time{}
			c.mu.Unlock()
		}
		n.fsys.bg.Go(func() { n.NotifyEntry(name) })
	}
	n.fsys.bg.Go(func() { n.NotifyContent(0, 0) })
}

// didCreate asks the host, after a create whose reply was lost or
// malformed, whether the object is there now with type typ (then the
// request was carried out); any doubt is a no.
func (n *node) didCreate(ctx context.Context, err error, p string, typ uint32) (hgfs.Attr, bool) {
	if !hgfs.Uncertain(err) {
		return hgfs.Attr{}, false
	}
	a, _, gerr := n.fsys.c.Getattr(ctx, p)
	return a, gerr == nil && a.Type == typ
}

// didRemove asks the host, after a removal whose reply was lost or
// malformed, whether the name is gone now (then the request was carried
// out).
func (n *node) didRemove(ctx context.Context, err error, p string) bool {
	if !hgfs.Uncertain(err) {
		return false
	}
	_, _, gerr := n.fsys.c.Getattr(ctx, p)
	s, ok := hgfs.StatusOf(gerr)
	return ok && hgfs.StatusErrno(s) == syscall.ENOENT
}

// didRename asks the host, after a rename whose reply was lost or
// malformed, whether it was carried out: the old name is gone and the new
// one is there. Otherwise (the old name still there, or any doubt) the
// caller answers the error, and the kernel keeps its entries, which unsure
// has told it to drop.
func (n *node) didRename(ctx context.Context, err error, src, dst string) bool {
	if !hgfs.Uncertain(err) {
		return false
	}
	_, _, serr := n.fsys.c.Getattr(ctx, src)
	if s, ok := hgfs.StatusOf(serr); !ok || hgfs.StatusErrno(s) != syscall.ENOENT {
		return false
	}
	_, _, derr := n.fsys.c.Getattr(ctx, dst)
	return derr == nil
}
