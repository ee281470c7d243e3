package hgfs

import (
	"context"
	"sync"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// Attr is a file's attributes as the host reports them.
type Attr = hgfsproto.Attr

// Getattr returns the attributes of path and, for a symlink, its target.
func (c *Client) Getattr(ctx context.Context, path string) (Attr, string, error) {
	op := hgfsproto.OpGetattrV3
	p, _, err := c.call(ctx, op, path, true, func(b []byte) []byte {
		return hgfsproto.AppendHintsRequest(b, 0, cpName(path))
	})
	if err != nil {
		return Attr{}, "", err
	}
	g, err := hgfsproto.DecodeGetattrReply(p)
	if err != nil {
		return Attr{}, "", c.malformed(op, path, err)
	}
	return g.Attr, hgfsproto.SymlinkTargetString(g.SymlinkTarget), nil
}

// SetAttr says what Setattr changes; nil fields are left alone.
type SetAttr struct {
	Mode  *uint32 // permission bits (12 low bits)
	UID   *uint32
	GID   *uint32
	Size  *uint64
	Atime *time.Time // a zero time means "now" on the host
	Mtime *time.Time
}

// Setattr changes the attributes of path. Only the fields asked for are
// sent; a given time goes with its hint (full 100 ns precision), "now"
// without it so the host uses its own clock.
func (c *Client) Setattr(ctx context.Context, path string, s SetAttr) error {
	var a hgfsproto.Attr
	var hints uint64
	if s.Mode != nil {
		a.SetPerm(*s.Mode)
	}
	if s.UID != nil {
		a.Mask |= hgfsproto.AttrValidUserID
		a.UserID = *s.UID
	}
	if s.GID != nil {
		a.Mask |= hgfsproto.AttrValidGroupID
		a.GroupID = *s.GID
	}
	if s.Size != nil {
		a.Mask |= hgfsproto.AttrValidSize
		a.Size = *s.Size
	}
	if s.Atime != nil {
		a.Mask |= hgfsproto.AttrValidAccessTime
		if !s.Atime.IsZero() {
			a.AccessTime = hgfsproto.NTTime(*s.Atime)
			hints |= hgfsproto.AttrHintSetAccessTime
		}
	}
	if s.Mtime != nil {
		a.Mask |= hgfsproto.AttrValidWriteTime
		if !s.Mtime.IsZero() {
			a.WriteTime = hgfsproto.NTTime(*s.Mtime)
			hints |= hgfsproto.AttrHintSetWriteTime
		}
	}
	if a.Mask == 0 {
		return nil
	}
	_, _, err := c.call(ctx, hgfsproto.OpSetattrV3, path, true, func(b []byte) []byte {
		return hgfsproto.SetattrRequest{Hints: hints, Attr: a, Name: cpName(path)}.Append(b)
	})
	return err
}

// Mkdir creates a directory with perm (12 low bits).
func (c *Client) Mkdir(ctx context.Context, path string, perm uint32) error {
	var a hgfsproto.Attr
	a.SetPerm(perm)
	_, _, err := c.call(ctx, hgfsproto.OpCreateDirV3, path, true, func(b []byte) []byte {
		return hgfsproto.CreateDirRequest{
			Mask: hgfsproto.CreateDirValidSpecialPerms | hgfsproto.CreateDirValidOwnerPerms |
				hgfsproto.CreateDirValidGroupPerms | hgfsproto.CreateDirValidOtherPerms | hgfsproto.CreateDirValidFileName,
			SpecialPerms: a.SpecialPerms, OwnerPerms: a.OwnerPerms, GroupPerms: a.GroupPerms, OtherPerms: a.OtherPerms,
			Name: cpName(path),
		}.Append(b)
	})
	return err
}

// Remove deletes a file (or symlink).
func (c *Client) Remove(ctx context.Context, path string) error {
	return c.delete(ctx, hgfsproto.OpDeleteFileV3, path)
}

// Rmdir deletes an empty directory.
func (c *Client) Rmdir(ctx context.Context, path string) error {
	return c.delete(ctx, hgfsproto.OpDeleteDirV3, path)
}

func (c *Client) delete(ctx context.Context, op hgfsproto.Op, path string) error {
	_, _, err := c.call(ctx, op, path, true, func(b []byte) []byte {
		return hgfsproto.AppendHintsRequest(b, 0, cpName(path))
	})
	return err
}

// Rename moves oldPath to newPath, replacing an existing target unless
// noReplace.
func (c *Client) Rename(ctx context.Context, oldPath, newPath string, noReplace bool) error {
	var hints uint64
	if noReplace {
		hints = hgfsproto.RenameHintNoReplaceExisting
	}
	_, _, err := c.call(ctx, hgfsproto.OpRenameV3, oldPath, true, func(b []byte) []byte {
		return hgfsproto.RenameRequest{Hints: hints, OldName: cpName(oldPath), NewName: cpName(newPath)}.Append(b)
	})
	return err
}

// Symlink creates link pointing at target, which is sent verbatim.
func (c *Client) Symlink(ctx context.Context, target, link string) error {
	_, _, err := c.call(ctx, hgfsproto.OpCreateSymlinkV3, link, true, func(b []byte) []byte {
		return hgfsproto.SymlinkRequest{Link: cpName(link), Target: hgfsproto.FileName{Name: hgfsproto.SymlinkTarget(target)}}.Append(b)
	})
	return err
}

// Statfs returns the free and total bytes of the volume holding path.
func (c *Client) Statfs(ctx context.Context, path string) (free, total uint64, err error) {
	op := hgfsproto.OpQueryVolumeInfoV3
	p, _, err := c.call(ctx, op, path, true, func(b []byte) []byte {
		return hgfsproto.AppendNameRequest(b, cpName(path))
	})
	if err != nil {
		return 0, 0, err
	}
	free, total, err = hgfsproto.DecodeVolumeReply(p)
	if err != nil {
		return 0, 0, c.malformed(op, path, err)
	}
	return free, total, nil
}

// DirEntry is one directory entry with its attributes.
type DirEntry struct {
	Name string // as a guest directory shows it (hgfsproto.Escape of the host's name)
	Attr Attr
}

// ReadDir lists a directory: one SEARCH_OPEN, SEARCH_READs at
// consecutive offsets kept in flight on every channel the transport has
// (a host answers each with one entry), and always a SEARCH_CLOSE, so the
// host never keeps a leaked search. "." and ".." are left out.
func (c *Client) ReadDir(ctx context.Context, path string) ([]DirEntry, error) {
	var entries []DirEntry
	collect := func(es []DirEntry) bool {
		entries = append(entries, es...)
		return true
	}
	_, err := c.list(ctx, path, 0, collect)
	if isStaleHandle(err) {
		// The host restarted or the share was re-enabled mid-listing.
		entries = nil
		_, err = c.list(ctx, path, 0, collect)
	}
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// ListFunc lists a directory as ReadDir does, with up to window
// SEARCH_READs in flight (0: the transport's concurrency), and hands the
// entries to fn in the host's order as their replies arrive, a reply's
// worth at a time. fn may block (no further reads are sent meanwhile);
// when it returns false the listing ends early: no further reads are
// sent, those in flight are waited for and the search is closed. It
// reports whether the listing reached the directory's end. Unlike
// ReadDir it does not start again after the host forgets the search,
// since fn has seen entries by then.
func (c *Client) ListFunc(ctx context.Context, path string, window int, fn func([]DirEntry) bool) (complete bool, err error) {
	return c.list(ctx, path, window, fn)
}

func (c *Client) list(ctx context.Context, path string, window int, fn func([]DirEntry) bool) (bool, error) {
	p, gen, err := c.call(ctx, hgfsproto.OpSearchOpenV3, path, true, func(b []byte) []byte {
		return hgfsproto.AppendNameRequest(b, cpName(path))
	})
	if err != nil {
		return false, err
	}
	sid, err := hgfsproto.DecodeHandleReply(p)
	if err != nil {
		return false, c.malformed(hgfsproto.OpSearchOpenV3, path, err)
	}
	if window <= 0 {
		window = c.tr.Concurrency()
	}
	complete, err := c.readSearch(ctx, path, sid, max(window, 1), fn)
	if c.Generation() == gen {
		// Best effort: a failure leaves nothing we could do better.
		c.call(context.WithoutCancel(ctx), hgfsproto.OpSearchCloseV3, path, false, func(b []byte) []byte {
			return hgfsproto.AppendHandleRequest(b, sid)
		})
	}
	return complete, err
}

// maxDirEntries bounds a listing, so a host that never ends one cannot
// make the guest loop forever.
const maxDirEntries = 1 << 22

// searchReply is the answer to the SEARCH_READ at one offset.
type searchReply struct {
	entries []hgfsproto.DirEntry
	done    bool
	err     error
}

// readSearch reads a search to its end (or until deliver returns false),
// keeping up to window SEARCH_READs in flight and consuming their
// replies in offset order. A reply with several entries (the V3 format
// allows it) skips the offsets it covered.
func (c *Client) readSearch(ctx context.Context, path string, sid uint32, window int, deliver func([]DirEntry) bool) (bool, error) {
	// Requests already sent run to completion (and are waited for) even
	// when the listing fails or stops early: abandoning one mid-flight
	// would cost its channel. window workers send them, each kept for
	// the whole listing: a goroutine per request cost its start, the
	// growth of its stack and its exit every entry (about a fifth of the
	// daemon's CPU in a listing over unix:).
	if window <= 1 {
		return c.readSearchSerial(ctx, path, sid, deliver)
	}
	type job struct {
		offset uint32
		ch     chan searchReply
	}
	jobs := make(chan job, window)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(jobs)
	for range window {
		wg.Go(func() {
			for j := range jobs {
				j.ch <- c.searchRead(ctx, path, sid, j.offset)
			}
		})
	}
	pending := map[uint32]chan searchReply{}
	launch := func(offset uint32) {
		ch := make(chan searchReply, 1)
		pending[offset] = ch
		jobs <- job{offset, ch} // waits, if at all, for a worker to take one
	}
	next, pos := uint32(0), uint32(0)
	var batch []DirEntry
	var err error
	for {
		for next < pos+uint32(window) {
			if _, ok := pending[next]; !ok {
				launch(next)
			}
			next++
		}
		r := <-pending[pos]
		delete(pending, pos)
		var end, complete bool
		if batch, end, complete, err = c.takeSearchReply(r, pos, path, batch, deliver); end {
			return complete, err
		}
		for range r.entries[1:] {
			// Offsets this reply covered: their requests are redundant.
			pos++
			delete(pending, pos)
		}
		pos++
		next = max(next, pos)
	}
}

// readSearchSerial is readSearch with one request at a time, sent by the
// caller's goroutine.
func (c *Client) readSearchSerial(ctx context.Context, path string, sid uint32, deliver func([]DirEntry) bool) (bool, error) {
	var batch []DirEntry
	for pos := uint32(0); ; {
		r := c.searchRead(ctx, path, sid, pos)
		var end, complete bool
		var err error
		if batch, end, complete, err = c.takeSearchReply(r, pos, path, batch, deliver); end {
			return complete, err
		}
		pos += uint32(len(r.entries))
	}
}

// takeSearchReply delivers the entries of the reply to the SEARCH_READ at
// offset pos (reusing batch) and reports whether the listing ends here,
// and how: complete, stopped by deliver, or failed. A listing that goes
// on has its next entries at pos + len(r.entries).
func (c *Client) takeSearchReply(r searchReply, pos uint32, path string, batch []DirEntry, deliver func([]DirEntry) bool) (_ []DirEntry, end, complete bool, err error) {
	if r.err != nil {
		return batch, true, false, r.err
	}
	batch = batch[:0]
	for _, e := range r.entries {
		if n := string(e.Name); n != "." && n != ".." {
			batch = append(batch, DirEntry{Name: hgfsproto.Escape(n), Attr: e.Attr})
		}
	}
	if len(batch) > 0 && !deliver(batch) {
		return batch, true, false, nil
	}
	if r.done {
		return batch, true, true, nil
	}
	if len(r.entries) == 0 || int(pos)+len(r.entries) > maxDirEntries {
		return batch, true, false, c.malformed(hgfsproto.OpSearchReadV3, path, ErrMalformed)
	}
	return batch, false, false, nil
}

// searchRead sends one SEARCH_READ_V3 and decodes its reply.
func (c *Client) searchRead(ctx context.Context, path string, sid, offset uint32) searchReply {
	op := hgfsproto.OpSearchReadV3
	p, _, err := c.call(ctx, op, path, false, func(b []byte) []byte {
		return hgfsproto.SearchReadRequest{Search: sid, Offset: offset}.Append(b)
	})
	if err != nil {
		return searchReply{err: err}
	}
	es, done, err := hgfsproto.DecodeSearchReadReply(p)
	if err != nil {
		err = c.malformed(op, path, err)
	}
	return searchReply{entries: es, done: done, err: err}
}

// Shares lists the share names as the host names them (unescaped;
// ReadDir's names are escaped as a guest directory shows them).
func (c *Client) Shares(ctx context.Context) ([]string, error) {
	entries, err := c.ReadDir(ctx, "")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = hgfsproto.Unescape(e.Name)
	}
	return names, nil
}
