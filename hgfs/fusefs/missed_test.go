package fusefs

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// hostTransport carries the client's packets to an in-process host.
type hostTransport struct{ h *hgfsd.Server }

func (s hostTransport) RoundTrip(ctx context.Context, p []byte) ([]byte, error) {
	out := s.h.RPCI(p)
	if bytes.HasPrefix(out, []byte("0 ")) {
		return nil, errors.New(string(out[2:]))
	}
	return out[2:], nil
}
func (hostTransport) Concurrency() int { return 1 }
func (hostTransport) Close() error     { return nil }

// TestNotFoundNeedsTheShare: the host's "not found" becomes a negative
// entry only for a name not found lately too and with the share seen
// present after it; a share found missing, or a new session, makes the
// FS forget the names it had learned.
func TestNotFoundNeedsTheShare(t *testing.T) {
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: t.TempDir()}}})
	ctx := t.Context()
	c, err := hgfs.New(ctx, hgfs.Config{Transport: hostTransport{h}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	root, _ := New(c, "s", DefaultOptions(), nil)
	defer Stop(root)
	d := root.(*node)

	if d.keepNotFound(ctx, "x") {
		t.Error("the first not-found of a name was kept")
	}
	if !d.keepNotFound(ctx, "x") {
		t.Error("a name not found twice, its share there, was not kept")
	}
	d.nameAdded("x")
	if d.keepNotFound(ctx, "x") {
		t.Error("a name this mount created counts as not found lately")
	}

	d.setNames(map[string]bool{"a": true})
	if !d.surelyAbsent("b") {
		t.Fatal("a fresh name set did not answer")
	}
	if err := h.SetShareEnabled("s", false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d.keepNotFound(ctx, "y") {
			t.Fatal("a not-found on a disabled share was kept")
		}
	}
	if d.surelyAbsent("b") {
		t.Error("the name set learned before the share went missing still answers")
	}
	h.SetShareEnabled("s", true)
	if !d.keepNotFound(ctx, "y") {
		t.Error("once the share was back, a name not found again was not kept")
	}

	d.setNames(map[string]bool{"a": true})
	h.Restart()
	if _, _, err := c.Getattr(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if d.surelyAbsent("b") {
		t.Error("the name set learned before a new session still answers")
	}
}
