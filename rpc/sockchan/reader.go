package sockchan

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/govmtools/govmtools/rpc/datamap"
)

// reader is the receive side of a Conn: frames are read with as few
// read(2)s as the data allows (the length prefix and a small reply come
// in one), and the kernel wait's reader is made once, not per message.
type reader struct {
	// buf holds bytes read past the end of the last frame, buf[start:end].
	buf        [4096]byte
	start, end int
	// kr is the kernel wait's reader once made; noKernel is set when the
	// conn has none (not a syscall.Conn, or not unix).
	kr       ctxReader
	noKernel bool
}

// ctxReader is a reader that waits in the kernel and heeds a context
// itself (pollReader).
type ctxReader interface {
	io.Reader
	setContext(ctx context.Context)
}

// kernel returns the reader that waits for conn in the kernel for ctx,
// and true, or conn and false where there is none.
func (rd *reader) kernel(ctx context.Context, conn net.Conn, closed *atomic.Bool) (io.Reader, bool) {
	if rd.kr == nil && !rd.noKernel {
		cr, ok := kernelReader(ctx, conn, closed).(ctxReader)
		rd.kr, rd.noKernel = cr, !ok
	}
	if rd.kr == nil {
		return conn, false
	}
	rd.kr.setContext(ctx)
	return rd.kr, true
}

// frame reads one length-prefixed DataMap from r and returns its content
// in a new slice (the caller keeps it), with datamap.ReadFrame's errors:
// a length above max is refused with datamap.ErrTooLarge before anything
// is allocated for it.
func (rd *reader) frame(r io.Reader, max int) ([]byte, error) {
	for rd.end-rd.start < 4 {
		if rd.start > 0 {
			rd.end = copy(rd.buf[:], rd.buf[rd.start:rd.end])
			rd.start = 0
		}
		n, err := r.Read(rd.buf[rd.end:])
		rd.end += n
		if err != nil && rd.end-rd.start < 4 {
			if err == io.EOF && rd.end > rd.start {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	b := rd.buf[rd.start:rd.end]
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", datamap.ErrTooLarge, n, max)
	}
	out := make([]byte, n)
	got := copy(out, b[4:])
	rd.start += 4 + got
	if rd.start == rd.end {
		rd.start, rd.end = 0, 0
	}
	if _, err := io.ReadFull(r, out[got:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("datamap: truncated frame, body of %d bytes: %w", n, err)
	}
	return out, nil
}
