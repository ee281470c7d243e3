package hgfs

import (
	"context"
	"sync"
	"sync/atomic"

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
			rb, data, err := f.c.readChunk(ctx, f.path, h, hi-lo, off+int64(lo))
			n := copy(buf[lo:hi], data)
			f.c.putReplyBuf(rb)
			return n, err
		})
		return err
	})
	return n, err
}

// ReadData is data read from the host, left in the reply buffers it
// arrived in: a FUSE daemon hands Slices to the kernel as they are
// (one writev to /dev/fuse) instead of copying them into the kernel
// request's buffer first. Release gives the buffers back to the client
// once the data has been used; the slices are invalid after it.
type ReadData struct {
	c    *Client
	bufs [][]byte // reply buffers, to give back
	data [][]byte // the data, in file order
	n    int
}

// Len is the number of bytes read.
func (d *ReadData) Len() int { return d.n }

// Slices returns the data in file order; they alias the reply buffers.
func (d *ReadData) Slices() [][]byte { return d.data }

// Release gives the reply buffers back. It may be called more than once.
func (d *ReadData) Release() {
	for _, b := range d.bufs {
		d.c.putReplyBuf(b)
	}
	d.bufs, d.data, d.n = nil, nil, 0
}

// ReadData reads size bytes at off as ReadAt does (negotiated-size
// requests, concurrently where the transport allows, fewer bytes only at
// end of file) and returns them in their reply buffers. Release the
// result when done with it, also after an error.
func (f *File) ReadData(ctx context.Context, size int, off int64) (*ReadData, error) {
	chunk := f.c.Sizes().MaxRead
	d := &ReadData{c: f.c}
	err := f.do(ctx, func(h uint32) error {
		d.Release() // a retry's first try
		npieces := max((size+chunk-1)/chunk, 1)
		bufs := make([][]byte, npieces)
		data := make([][]byte, npieces)
		n, err := f.c.parallel(ctx, size, chunk, func(ctx context.Context, lo, hi int) (int, error) {
			rb, p, err := f.c.readChunk(ctx, f.path, h, hi-lo, off+int64(lo))
			bufs[lo/chunk], data[lo/chunk] = rb, p
			return len(p), err
		})
		for _, b := range bufs {
			if b != nil {
				d.bufs = append(d.bufs, b)
			}
		}
		// The prefix parallel counted: whole pieces up to the first
		// short one, which ends it.
		for left, i := n, 0; left > 0; i++ {
			p := data[i][:min(len(data[i]), left)]
			d.data = append(d.data, p)
			left -= len(p)
		}
		d.n = n
		return err
	})
	if err != nil {
		d.Release()
		return d, err
	}
	return d, nil
}

// readChunk sends one READ_V3 of size bytes at off and returns the reply
// buffer it used (give it back with putReplyBuf, also after an error)
// and the data, which aliases it.
func (c *Client) readChunk(ctx context.Context, path string, h uint32, size int, off int64) (rb, data []byte, err error) {
	op := hgfsproto.OpReadV3
	rb = c.replyBuf()
	p, _, err := c.callInto(ctx, op, path, false, func(b []byte) []byte {
		return hgfsproto.ReadRequest{Handle: h, Offset: uint64(off), Size: uint32(size)}.Append(b)
	}, rb)
	if err != nil {
		return rb, nil, err
	}
	data, err = hgfsproto.DecodeReadReply(p, uint32(size))
	if err != nil {
		return rb, nil, c.malformed(op, path, err)
	}
	return rb, data, nil
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
	// fan workers, the caller one of them, each taking the next chunk
	// until none is left: chunks start in order, and a kernel request of
	// eight chunks starts three goroutines, not eight (each new one grows
	// its stack to the depth of a round trip).
	var next atomic.Int64
	run := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= nchunks {
				return
			}
			lo, hi := i*chunk, min((i+1)*chunk, total)
			n, err := work(ctx, lo, hi)
			results[i] = result{n, err}
		}
	}
	var wg sync.WaitGroup
	for range min(fan, nchunks) - 1 {
		wg.Go(run)
	}
	run()
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
