package hgfs

import (
	"context"
	"sync"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// OpenFlags says how to open a file.
type OpenFlags struct {
	Mode   uint32 // hgfsproto.OpenModeReadOnly, WriteOnly or ReadWrite
	Create uint32 // hgfsproto.OpenFlagOpen, OpenEmpty, Create, CreateSafe or CreateEmpty
	Perm   uint32 // permission bits for a created file
}

// File is an open host file. Its handle survives host restarts: when the
// host no longer knows it, the file is reopened by path (never with
// creation or truncation) and the operation retried once.
type File struct {
	c    *Client
	path string
	mode uint32

	mu     sync.Mutex
	handle uint32
	gen    uint64
	closed bool
}

// Open opens path.
func (c *Client) Open(ctx context.Context, path string, fl OpenFlags) (*File, error) {
	h, gen, err := c.open(ctx, path, fl)
	if err != nil {
		return nil, err
	}
	return &File{c: c, path: path, mode: fl.Mode, handle: h, gen: gen}, nil
}

func (c *Client) open(ctx context.Context, path string, fl OpenFlags) (uint32, uint64, error) {
	mask := hgfsproto.OpenValidMode | hgfsproto.OpenValidFlags | hgfsproto.OpenValidFileName | hgfsproto.OpenValidServerLock
	req := hgfsproto.OpenRequest{Mode: fl.Mode, Flags: fl.Create, DesiredLock: hgfsproto.LockNone}
	if fl.Create != hgfsproto.OpenFlagOpen && fl.Create != hgfsproto.OpenFlagOpenEmpty {
		mask |= hgfsproto.OpenValidAllPerms
		var a hgfsproto.Attr
		a.SetPerm(fl.Perm)
		req.SpecialPerms, req.OwnerPerms, req.GroupPerms, req.OtherPerms = a.SpecialPerms, a.OwnerPerms, a.GroupPerms, a.OtherPerms
	}
	req.Mask = mask
	req.Name = cpName(path)
	op := hgfsproto.OpOpenV3
	p, gen, err := c.call(ctx, op, path, true, req.Append)
	if err != nil {
		return 0, gen, err
	}
	r, err := hgfsproto.DecodeOpenReply(p)
	if err != nil {
		return 0, gen, c.malformed(op, path, err)
	}
	return r.Handle, gen, nil
}

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// SetPath records a rename, so a reopen finds the file.
func (f *File) SetPath(p string) {
	f.mu.Lock()
	f.path = p
	f.mu.Unlock()
}

func isStaleHandle(err error) bool {
	s, ok := StatusOf(err)
	return ok && (s == hgfsproto.StatusInvalidHandle || s == hgfsproto.StatusStaleSession)
}

// current returns a handle valid in the current session, reopening the
// file if the session changed since it was opened.
func (f *File) current(ctx context.Context, stale uint32) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, &OpError{Op: hgfsproto.OpReadV3, Path: f.path, Err: hgfsproto.StatusInvalidHandle}
	}
	if f.gen == f.c.Generation() && f.handle != stale {
		return f.handle, nil
	}
	h, gen, err := f.c.open(ctx, f.path, OpenFlags{Mode: f.mode})
	if err != nil {
		return 0, err
	}
	f.c.lg.Info("hgfs: reopened a file the host had forgotten", "path", f.path)
	f.handle, f.gen = h, gen
	return h, nil
}

// do runs fn with a valid handle, reopening once if the host has
// forgotten it.
func (f *File) do(ctx context.Context, fn func(h uint32) error) error {
	h, err := f.current(ctx, hgfsproto.InvalidHandle)
	if err != nil {
		return err
	}
	err = fn(h)
	if !isStaleHandle(err) {
		return err
	}
	if h, err = f.current(ctx, h); err != nil {
		return err
	}
	return fn(h)
}

// ReadAt reads len(buf) bytes at off, splitting the read into
// negotiated-size requests that run concurrently. It returns fewer bytes
// only at end of file; errors are never swallowed.
func (f *File) ReadAt(ctx context.Context, buf []byte, off int64) (int, error) {
	chunk := f.c.Sizes().MaxRead
	var n int
	err := f.do(ctx, func(h uint32) error {
		var err error
		n, err = f.c.parallel(ctx, len(buf), chunk, func(ctx context.Context, lo, hi int) (int, error) {
			return f.c.readChunk(ctx, f.path, h, buf[lo:hi], off+int64(lo))
		})
		return err
	})
	return n, err
}

func (c *Client) readChunk(ctx context.Context, path string, h uint32, buf []byte, off int64) (int, error) {
	op := hgfsproto.OpReadV3
	size := uint32(len(buf))
	rb := c.replyBuf()
	defer c.putReplyBuf(rb)
	p, _, err := c.callInto(ctx, op, path, false, func(b []byte) []byte {
		return hgfsproto.ReadRequest{Handle: h, Offset: uint64(off), Size: size}.Append(b)
	}, rb)
	if err != nil {
		return 0, err
	}
	data, err := hgfsproto.DecodeReadReply(p, size)
	if err != nil {
		return 0, c.malformed(op, path, err)
	}
	return copy(buf, data), nil
}

// WriteAt writes data at off in as few requests as fit the VMX's message
// cap, of equal size, concurrently where the transport's fan-out allows
// (one at a time over the backdoor: RPCTransport.FanOut). It returns the
// bytes written before the first failure.
func (f *File) WriteAt(ctx context.Context, data []byte, off int64) (int, error) {
	return f.write(ctx, data, off, false)
}

// Append writes data at the host's end of file (HGFS_WRITE_APPEND), so
// concurrent appenders and a stale cached size cannot leave holes. Data
// larger than one request goes out sequentially.
func (f *File) Append(ctx context.Context, data []byte) (int, error) {
	return f.write(ctx, data, 0, true)
}

func (f *File) write(ctx context.Context, data []byte, off int64, appendMode bool) (int, error) {
	chunk := evenChunk(len(data), f.c.Sizes().MaxWrite)
	var n int
	err := f.do(ctx, func(h uint32) error {
		var err error
		work := func(ctx context.Context, lo, hi int) (int, error) {
			return f.c.writeChunk(ctx, f.path, h, data[lo:hi], off+int64(lo), appendMode)
		}
		if appendMode {
			n, err = sequential(ctx, len(data), chunk, work)
		} else {
			n, err = f.c.parallel(ctx, len(data), chunk, work)
		}
		return err
	})
	return n, err
}

// evenChunk is the chunk size that splits total bytes into as few
// chunks of at most max as possible, all of about the same size (the
// last may be a little shorter), so no request is a runt.
func evenChunk(total, max int) int {
	if total <= max || max <= 0 {
		return max
	}
	n := (total + max - 1) / max
	return (total + n - 1) / n
}

func (c *Client) writeChunk(ctx context.Context, path string, h uint32, data []byte, off int64, appendMode bool) (int, error) {
	op := hgfsproto.OpWriteV3
	var flags uint8
	if appendMode {
		flags = hgfsproto.WriteAppend
	}
	p, _, err := c.call(ctx, op, path, false, func(b []byte) []byte {
		return hgfsproto.WriteRequest{Handle: h, Flags: flags, Offset: uint64(off), Data: data}.Append(b)
	})
	if err != nil {
		return 0, err
	}
	n, err := hgfsproto.DecodeWriteReply(p, uint32(len(data)))
	if err != nil {
		return 0, c.malformed(op, path, err)
	}
	return int(n), nil
}

// Close releases the host handle. A handle the host already forgot is
// not an error.
func (f *File) Close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if f.gen != f.c.Generation() {
		return nil
	}
	_, _, err := f.c.call(ctx, hgfsproto.OpCloseV3, f.path, false, func(b []byte) []byte {
		return hgfsproto.AppendHandleRequest(b, f.handle)
	})
	if isStaleHandle(err) {
		return nil
	}
	return err
}

// parallel splits [0,total) into chunks and runs work on up to the
// transport's concurrency at once. The result is the length of the
// prefix completed in full (a short chunk ends it: end of file or a
// short write); an error is returned only when nothing before the
// failing chunk was done.
func (c *Client) parallel(ctx context.Context, total, chunk int, work func(ctx context.Context, lo, hi int) (int, error)) (int, error) {
	nchunks := (total + chunk - 1) / chunk
	fan := c.fanOut()
	if nchunks <= 1 || fan <= 1 {
		return sequential(ctx, total, chunk, work)
	}
	type result struct {
		n   int
		err error
	}
	results := make([]result, nchunks)
	sem := make(chan struct{}, fan)
	var wg sync.WaitGroup
	for i := range nchunks {
		lo, hi := i*chunk, min((i+1)*chunk, total)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := work(ctx, lo, hi)
			results[i] = result{n, err}
		})
	}
	wg.Wait()
	done := 0
	for i, r := range results {
		if r.err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, r.err
		}
		done += r.n
		if r.n < min((i+1)*chunk, total)-i*chunk {
			break
		}
	}
	return done, nil
}

// fanOuter is a Transport that says how many pieces of one read or write
// may usefully be in flight, when that differs from Concurrency.
type fanOuter interface {
	FanOut() int
}

// fanOut is how many chunks of one read or write parallel sends at once.
func (c *Client) fanOut() int {
	if f, ok := c.tr.(fanOuter); ok {
		return f.FanOut()
	}
	return c.tr.Concurrency()
}

func sequential(ctx context.Context, total, chunk int, work func(ctx context.Context, lo, hi int) (int, error)) (int, error) {
	done := 0
	for done < total {
		lo, hi := done, min(done+chunk, total)
		n, err := work(ctx, lo, hi)
		if err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
		done += n
		if n < hi-lo {
			break
		}
	}
	return done, nil
}
