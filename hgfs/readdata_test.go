package hgfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// intoChannel is a hostChannel that receives into the caller's buffer,
// as the backdoor and stream channels do.
type intoChannel struct{ hostChannel }

func (c *intoChannel) ReceiveInto(ctx context.Context, buf []byte) ([]byte, error) {
	if cap(buf) < len(c.reply) {
		return c.reply, nil
	}
	return append(buf[:0], c.reply...), nil
}

var _ rpc.IntoReceiver = (*intoChannel)(nil)

// intoHolder is an intoChannel that holds its CPU for a call: the
// backdoor.
type intoHolder struct{ intoChannel }

func (c *intoHolder) HoldsCPU() bool { return true }

// within reports whether p lies inside one of bufs.
func within(p []byte, bufs [][]byte) bool {
	if len(p) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	for _, b := range bufs {
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		if start >= lo && start+uintptr(len(p)) <= lo+uintptr(cap(b)) {
			return true
		}
	}
	return false
}

// TestReadDataInReplyBuffers: ReadData returns the file's bytes in
// order, short only at end of file, in the reply buffers they arrived
// in; released buffers serve the next read.
func TestReadDataInReplyBuffers(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 2*hgfsproto.LargeIOMax+1000)
	for i := range data {
		data[i] = byte(i*13 + i>>16)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, holds := range []bool{false, true} {
		host := &countingHost{h: hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})}
		dial := func(ctx context.Context) (rpc.Channel, error) {
			if holds {
				return &intoHolder{intoChannel{hostChannel{host: host}}}, nil
			}
			return &intoChannel{hostChannel{host: host}}, nil
		}
		c, err := New(t.Context(), Config{Transport: NewRPCTransport(dial, 4, nil)})
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Open(t.Context(), "s/f", OpenFlags{Mode: hgfsproto.OpenModeReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		// Three pieces, the last short: the whole file, from offset 100.
		d, err := f.ReadData(t.Context(), len(data)+5000, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(d.Slices(), nil); d.Len() != len(data)-100 || !bytes.Equal(got, data[100:]) {
			t.Fatalf("holdsCPU=%v: read %d bytes (Len %d), want the %d after offset 100", holds, len(got), d.Len(), len(data)-100)
		}
		if len(d.Slices()) != 3 {
			t.Errorf("holdsCPU=%v: %d slices for three READ_V3s", holds, len(d.Slices()))
		}
		bufs := append([][]byte(nil), d.bufs...)
		for i, s := range d.Slices() {
			if !within(s, bufs) {
				t.Errorf("holdsCPU=%v: slice %d is not in a reply buffer", holds, i)
			}
		}
		d.Release()
		d.Release() // twice is harmless
		if d.Len() != 0 || d.Slices() != nil {
			t.Errorf("holdsCPU=%v: released data still has %d bytes", holds, d.Len())
		}
		// The next read takes a released buffer.
		d, err = f.ReadData(t.Context(), 4096, 0)
		if err != nil || d.Len() != 4096 || !bytes.Equal(d.Slices()[0], data[:4096]) {
			t.Fatalf("holdsCPU=%v: second read %d bytes, %v", holds, d.Len(), err)
		}
		if !within(d.Slices()[0], bufs) {
			t.Errorf("holdsCPU=%v: the second read did not reuse a released reply buffer", holds)
		}
		d.Release()
		// At end of file: nothing, no error.
		if d, err = f.ReadData(t.Context(), 4096, int64(len(data))); err != nil || d.Len() != 0 || len(d.Slices()) != 0 {
			t.Fatalf("holdsCPU=%v: read at end of file: %d bytes, %v", holds, d.Len(), err)
		}
		d.Release()
		f.Close(t.Context())
		c.Close(t.Context())
	}
}

// TestReadDataFailures: a read whose first piece fails returns the
// error and keeps no buffer; one whose later piece fails returns the
// pieces before it, never a gap.
func TestReadDataFailures(t *testing.T) {
	fail := 0 // fail the fail'th READ_V3 (1-based) from now on; 0: none
	reads := 0
	c, _, _, err := newHooked(t, func(req, reply []byte) ([]byte, error) {
		if isOp(req, hgfsproto.OpReadV3) {
			reads++
			if reads == fail {
				return nil, errors.New("channel gone")
			}
		}
		return reply, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	f, err := c.Open(ctx, "s/f", OpenFlags{Mode: hgfsproto.OpenModeReadWrite, Create: hgfsproto.OpenFlagCreateSafe, Perm: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("abcdefgh"), hgfsproto.LargeIOMax/4) // two pieces
	if n, err := f.WriteAt(ctx, data, 0); err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	reads, fail = 0, 1
	d, err := f.ReadData(ctx, len(data), 0)
	if err == nil || d.Len() != 0 || len(d.bufs) != 0 {
		t.Fatalf("first piece failing: %d bytes, %d buffers kept, %v", d.Len(), len(d.bufs), err)
	}
	reads, fail = 0, 2
	d, err = f.ReadData(ctx, len(data), 0)
	if err != nil || d.Len() != hgfsproto.LargeIOMax || !bytes.Equal(bytes.Join(d.Slices(), nil), data[:hgfsproto.LargeIOMax]) {
		t.Fatalf("second piece failing: %d bytes, %v; want the first piece", d.Len(), err)
	}
	d.Release()
}
