package hgfswork

import (
	"context"
	"fmt"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// RawIO moves size bytes of path (".host" path "SHARE/NAME") with the
// HGFS client alone, no FUSE: one request at a time of the largest size
// the session allows (WRITE_V3 under the 64 KiB message cap, READ_V3 of
// the negotiated size), the file created first for a write. It returns
// the time the requests took, the transport's payload rate that a mount
// can at best reach with one request in flight. Reads leave the data in
// its reply buffers (hgfs.File.ReadData), as the mount hands it to the
// kernel.
func RawIO(ctx context.Context, c *hgfs.Client, path string, size int64, write bool) (time.Duration, error) {
	fl := hgfs.OpenFlags{Mode: hgfsproto.OpenModeReadOnly, Create: hgfsproto.OpenFlagOpen}
	chunk := c.Sizes().MaxRead
	if write {
		fl = hgfs.OpenFlags{Mode: hgfsproto.OpenModeWriteOnly, Create: hgfsproto.OpenFlagCreateEmpty, Perm: 0o644}
		chunk = c.Sizes().MaxWrite
	}
	f, err := c.Open(ctx, path, fl)
	if err != nil {
		return 0, err
	}
	defer f.Close(ctx)
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i*31 + 7)
	}
	start := time.Now()
	for off := int64(0); off < size; {
		b := buf[:min(int64(chunk), size-off)]
		var n int
		if write {
			n, err = f.WriteAt(ctx, b, off)
		} else {
			var d *hgfs.ReadData
			d, err = f.ReadData(ctx, len(b), off)
			n = d.Len()
			d.Release()
		}
		if err != nil {
			return 0, err
		}
		if n != len(b) {
			return 0, fmt.Errorf("%s at %d: %d of %d bytes", path, off, n, len(b))
		}
		off += int64(n)
	}
	return time.Since(start), nil
}
