package hgfs

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
)

// simTransport calls the simulator's HGFS server in process, recording
// the largest request it carried.
type simTransport struct {
	h        *hgfsd.Server
	conc     int
	mu       sync.Mutex
	maxSent  int
	inFlight int
	peak     int
}

func (s *simTransport) RoundTrip(ctx context.Context, p []byte) ([]byte, error) {
	s.mu.Lock()
	s.maxSent = max(s.maxSent, len(p)+2)
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inFlight--; s.mu.Unlock() }()
	if len(p)+2 > hgfsproto.MaxGuestMessage {
		return nil, fmt.Errorf("message of %d bytes over the VMX cap", len(p)+2)
	}
	out := s.h.RPCI(p)
	if bytes.HasPrefix(out, []byte("0 ")) {
		return nil, fmt.Errorf("%w (%s)", ErrDisabled, out[2:])
	}
	// The fake host's latency stays a real sleep: it is what lets the
	// client's concurrent requests overlap, the thing the tests measure
	// (peak in flight); without it each request ends before the next starts.
	time.Sleep(50 * time.Microsecond)
	return out[2:], nil
}
func (s *simTransport) Concurrency() int { return s.conc }
func (s *simTransport) Close() error     { return nil }

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newClient(t *testing.T, h *hgfsd.Server) (*Client, *simTransport, *logBuf) {
	t.Helper()
	tr := &simTransport{h: h, conc: 4}
	lb := &logBuf{}
	c, err := New(t.Context(), Config{Transport: tr, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c, tr, lb
}

func TestClientReadWriteLarge(t *testing.T) {
	dir := t.TempDir()
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, tr, _ := newClient(t, h)
	ctx := t.Context()
	sz := c.Sizes()
	if sz.MaxPacket != hgfsproto.LargePacketMax || sz.MaxRead != hgfsproto.LargeIOMax || sz.MaxWrite != hgfsproto.MaxGuestMessage-2-hgfsproto.HeaderSize-hgfsproto.WriteRequestHead {
		t.Fatalf("sizes %+v", sz)
	}
	f, err := c.Open(ctx, "s/big", OpenFlags{Mode: hgfsproto.OpenModeReadWrite, Create: hgfsproto.OpenFlagCreateSafe, Perm: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if n, err := f.WriteAt(ctx, data, 0); err != nil || n != len(data) {
		t.Fatalf("1 MiB write: %d %v", n, err)
	}
	if tr.maxSent > hgfsproto.MaxGuestMessage {
		t.Fatalf("a request of %d bytes exceeded the 64 KiB cap", tr.maxSent)
	}
	if tr.peak < 2 {
		t.Errorf("no two requests were ever in flight (peak %d)", tr.peak)
	}
	got := make([]byte, len(data)+100)
	n, err := f.ReadAt(ctx, got, 0)
	if err != nil || n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fatalf("read back %d %v", n, err)
	}
	if n, err := f.Append(ctx, []byte("tail")); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	f.Close(ctx)
	b, _ := os.ReadFile(filepath.Join(dir, "big"))
	if !bytes.Equal(b[:len(data)], data) || string(b[len(data):]) != "tail" {
		t.Fatal("host file differs")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "big")); fi.Mode().Perm()&0o707 != 0o600 {
		t.Fatalf("created mode %v", fi.Mode())
	}
}

func TestClientReadDirBatches(t *testing.T) {
	dir := t.TempDir()
	for i := range 2000 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d", i)), []byte("x"), 0o644)
	}
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, tr, _ := newClient(t, h)
	before := h.State().RoundTrips
	entries, err := c.ReadDir(t.Context(), "s")
	if err != nil || len(entries) != 2000 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	// One entry per SEARCH_READ as from a host, ".", ".." and the end
	// marker included, plus the open, the close and at most a window of
	// reads past the end.
	if trips := h.State().RoundTrips - before; trips < 2005 || trips > 2005+uint64(tr.conc) {
		t.Fatalf("2000 entries took %d round trips", trips)
	}
	if tr.peak < 2 {
		t.Fatalf("SEARCH_READs were not pipelined (at most %d in flight)", tr.peak)
	}
	if entries[0].Attr.Size != 1 || entries[0].Attr.Type != hgfsproto.FileTypeRegular {
		t.Fatalf("attributes not filled from the search: %+v", entries[0].Attr)
	}
	if st := h.State(); st.OpenSearches != 0 {
		t.Fatalf("%d searches left open", st.OpenSearches)
	}
	var sb strings.Builder
	WriteStats(&sb, c.Stats())
	if !strings.Contains(sb.String(), "SEARCH_READ_V3") || !strings.Contains(sb.String(), "SEARCH_CLOSE_V3") || !strings.Contains(sb.String(), "total round trips") {
		t.Fatalf("stats:\n%s", sb.String())
	}
	shares, err := c.Shares(t.Context())
	if err != nil || strings.Join(shares, ",") != "s" {
		t.Fatalf("shares %v %v", shares, err)
	}
}

// TestClientListOneAtATime: a listing with a window of one (a storm's over
// the backdoor) sends its SEARCH_READs one after the other from the
// caller, none past the end, and stops when the callback says so.
func TestClientListOneAtATime(t *testing.T) {
	dir := t.TempDir()
	for i := range 50 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte("x"), 0o644)
	}
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, tr, _ := newClient(t, h)
	tr.peak = 0
	before := h.State().RoundTrips
	seen := map[string]bool{}
	complete, err := c.ListFunc(t.Context(), "s", 1, func(es []DirEntry) bool {
		for _, e := range es {
			seen[e.Name] = true
		}
		return true
	})
	if err != nil || !complete || len(seen) != 50 {
		t.Fatalf("complete %v, %d names, %v", complete, len(seen), err)
	}
	// The open, 50 entries with "." and "..", the end, the close.
	if trips := h.State().RoundTrips - before; trips != 55 {
		t.Errorf("50 entries one at a time took %d round trips, want 55", trips)
	}
	if tr.peak > 1 {
		t.Errorf("%d requests in flight at once", tr.peak)
	}
	n := 0
	complete, err = c.ListFunc(t.Context(), "s", 1, func(es []DirEntry) bool { n += len(es); return n < 10 })
	if err != nil || complete || n != 10 {
		t.Fatalf("stopped listing: complete %v after %d entries, %v", complete, n, err)
	}
	if st := h.State(); st.OpenSearches != 0 {
		t.Fatalf("%d searches left open", st.OpenSearches)
	}
}

func TestClientRecovery(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("content"), 0o644)
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, _, lb := newClient(t, h)
	ctx := t.Context()
	f, err := c.Open(ctx, "s/f", OpenFlags{Mode: hgfsproto.OpenModeReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	read := func(what string) {
		t.Helper()
		clear(buf)
		if n, err := f.ReadAt(ctx, buf, 0); err != nil || string(buf[:n]) != "content" {
			t.Fatalf("%s: read %q %v", what, buf[:n], err)
		}
	}
	read("first")
	gen := c.Generation()
	h.Restart()
	if _, _, err := c.Getattr(ctx, "s/f"); err != nil {
		t.Fatalf("getattr after host restart: %v", err)
	}
	if c.Generation() == gen {
		t.Fatal("no new session after a restart")
	}
	read("after restart")
	h.SetShareEnabled("s", false)
	if _, _, err := c.Getattr(ctx, "s/f"); Errno(err) != syscall.ENOENT {
		t.Fatalf("getattr on a disabled share: %v", err)
	}
	h.SetShareEnabled("s", true)
	read("after re-enable")
	h.SetEnabled(false)
	_, _, err = c.Getattr(ctx, "s/f")
	if !errors.Is(err, ErrDisabled) || Errno(err) != syscall.EIO {
		t.Fatalf("getattr with sharing disabled: %v", err)
	}
	h.SetEnabled(true)
	read("after sharing re-enabled")
	if _, _, err := c.Getattr(ctx, "s/f"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lb.String(), "session is stale") {
		t.Errorf("no log line for the renewal:\n%s", lb.String())
	}
	f.Close(ctx)
}

func TestClientMalformedReplies(t *testing.T) {
	dir := t.TempDir()
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	c, _, lb := newClient(t, h)
	ctx := t.Context()
	for _, mode := range []string{"truncate", "short"} {
		h.InjectFault(mode, 1, "")
		_, _, err := c.Getattr(ctx, "s")
		if !errors.Is(err, ErrMalformed) || Errno(err) != syscall.EIO {
			t.Fatalf("%s: %v", mode, err)
		}
		if _, _, err := c.Getattr(ctx, "s"); err != nil {
			t.Fatalf("%s: next op failed: %v", mode, err)
		}
	}
	if !strings.Contains(lb.String(), "malformed reply") {
		t.Fatalf("no log line:\n%s", lb.String())
	}
}

func TestClientLegacyHost(t *testing.T) {
	dir := t.TempDir()
	h := hgfsd.New(hgfsd.Options{Shares: []hgfsd.ShareSpec{{Name: "s", Dir: dir}}})
	h.SetNoSessions(true)
	c, tr, _ := newClient(t, h)
	ctx := t.Context()
	if sz := c.Sizes(); sz.MaxPacket != hgfsproto.LegacyLargePacketMax {
		t.Fatalf("legacy sizes %+v", sz)
	}
	f, err := c.Open(ctx, "s/x", OpenFlags{Mode: hgfsproto.OpenModeReadWrite, Create: hgfsproto.OpenFlagCreate, Perm: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("ab"), 100000)
	if n, err := f.WriteAt(ctx, data, 0); err != nil || n != len(data) {
		t.Fatal(n, err)
	}
	if tr.maxSent > hgfsproto.MaxGuestMessage {
		t.Fatalf("request of %d bytes", tr.maxSent)
	}
	if err := c.Mkdir(ctx, "s/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, "s/x", "s/d/y", false); err != nil {
		t.Fatal(err)
	}
	entries, err := c.ReadDir(ctx, "s/d")
	if err != nil || len(entries) != 1 || entries[0].Attr.Size != uint64(len(data)) {
		t.Fatalf("%+v %v", entries, err)
	}
	if err := c.Symlink(ctx, "d/y", "s/l"); err != nil {
		t.Fatal(err)
	}
	if a, target, err := c.Getattr(ctx, "s/l"); err != nil || a.Type != hgfsproto.FileTypeSymlink || target != "d/y" {
		t.Fatal(a, target, err)
	}
	mt := time.Date(2021, 3, 4, 5, 6, 7, 123456700, time.UTC)
	if err := c.Setattr(ctx, "s/d/y", SetAttr{Mtime: &mt}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "d/y")); !fi.ModTime().Equal(mt) {
		t.Fatalf("mtime %v, want %v", fi.ModTime(), mt)
	}
	if free, total, err := c.Statfs(ctx, "s"); err != nil || total == 0 || free > total {
		t.Fatal(free, total, err)
	}
	if err := c.Rename(ctx, "s/d/y", "s/l", true); Errno(err) != syscall.EEXIST {
		t.Fatalf("no-replace rename: %v", err)
	}
}

// TestErrnoMapping is the whole status -> errno table. The values are
// those of open-vm-tools' Linux FUSE client (docs/hgfs-errno.md), except
// the three statuses it leaves at EIO that have a precise errno:
// INVALID_PARAMETER, NOT_SAME_DEVICE (mv must see EXDEV to copy) and
// TOO_MANY_SESSIONS. Programs branch on these: rm -r on ENOTEMPTY,
// mkdir -p on EEXIST, cp on ENOSPC, sudo-style retries on EACCES vs EPERM.
func TestErrnoMapping(t *testing.T) {
	table := []struct {
		s    hgfsproto.Status
		want syscall.Errno
	}{
		{hgfsproto.StatusSuccess, 0},
		{hgfsproto.StatusNoSuchFileOrDir, syscall.ENOENT},
		{hgfsproto.StatusInvalidHandle, syscall.EBADF},
		{hgfsproto.StatusOperationNotPermitted, syscall.EPERM},
		{hgfsproto.StatusFileExists, syscall.EEXIST},
		{hgfsproto.StatusNotDirectory, syscall.ENOTDIR},
		{hgfsproto.StatusDirNotEmpty, syscall.ENOTEMPTY},
		{hgfsproto.StatusProtocolError, syscall.EPROTO},
		{hgfsproto.StatusAccessDenied, syscall.EACCES},
		{hgfsproto.StatusInvalidName, syscall.ENOENT},
		{hgfsproto.StatusGenericError, syscall.EIO},
		{hgfsproto.StatusSharingViolation, syscall.EACCES},
		{hgfsproto.StatusNoSpace, syscall.ENOSPC},
		{hgfsproto.StatusOperationNotSupported, syscall.EOPNOTSUPP},
		{hgfsproto.StatusNameTooLong, syscall.ENAMETOOLONG},
		{hgfsproto.StatusInvalidParameter, syscall.EINVAL},
		{hgfsproto.StatusNotSameDevice, syscall.EXDEV},
		{hgfsproto.StatusStaleSession, syscall.EIO},
		{hgfsproto.StatusTooManySessions, syscall.EAGAIN},
		{hgfsproto.StatusTransportError, syscall.EIO},
		{hgfsproto.Status(20), syscall.EIO},
		{hgfsproto.Status(99), syscall.EIO},
		{hgfsproto.Status(0xffffffff), syscall.EIO},
	}
	seen := map[hgfsproto.Status]bool{}
	for _, c := range table {
		seen[c.s] = true
		if got := StatusErrno(c.s); got != c.want {
			t.Errorf("StatusErrno(%v) = %v, want %v", c.s, got, c.want)
		}
		// Through the error chain as the FUSE layer sees it.
		err := &OpError{Op: hgfsproto.OpGetattrV3, Path: "s/x", Err: fmt.Errorf("wrapped: %w", c.s)}
		if c.s == hgfsproto.StatusSuccess {
			continue
		}
		if got := Errno(err); got != c.want {
			t.Errorf("Errno(%v) = %v, want %v", err, got, c.want)
		}
	}
	// Every defined status is in the table: a new constant must be given
	// its errno here, not fall to EIO unnoticed.
	for s := hgfsproto.StatusSuccess; s <= hgfsproto.StatusTransportError; s++ {
		if !seen[s] {
			t.Errorf("status %d (%v) missing from the table", uint32(s), s)
		}
	}
}

// fuzzTransport answers every request with the next fuzzed reply,
// patched to echo the request id so the op decoders are reached.
type fuzzTransport struct {
	replies [][]byte
	i       int
}

func (f *fuzzTransport) RoundTrip(ctx context.Context, p []byte) ([]byte, error) {
	if len(f.replies) == 0 {
		return nil, errors.New("no more")
	}
	r := bytes.Clone(f.replies[f.i%len(f.replies)])
	f.i++
	if f.i > 64 {
		return nil, errors.New("enough")
	}
	if len(p) >= 20 && len(r) >= 20 && hgfsproto.IsV4(p) && hgfsproto.IsV4(r) {
		copy(r[16:20], p[16:20])
	} else if len(p) >= 8 && len(r) >= 4 && !hgfsproto.IsV4(r) {
		copy(r[0:4], p[0:4])
	}
	return r, nil
}
func (f *fuzzTransport) Concurrency() int { return 1 }
func (f *fuzzTransport) Close() error     { return nil }

// FuzzClientReplies drives every client operation against arbitrary
// host replies: errors are fine, panics and hangs are not.
func FuzzClientReplies(f *testing.F) {
	h := hgfsd.New(hgfsd.Options{})
	session := h.Dispatch(hgfsproto.AppendRequestV4(nil, 1, hgfsproto.OpCreateSessionV4, 0, hgfsproto.CreateSessionRequest{}.Append(nil)))
	f.Add(session, h.Dispatch(hgfsproto.AppendRequestV4(nil, 2, hgfsproto.OpGetattrV3, 0, hgfsproto.AppendHintsRequest(nil, 0, cpName("")))))
	f.Add(session, hgfsproto.AppendReply(nil, hgfsproto.Request{Kind: hgfsproto.KindV4, ID: 3, Op: hgfsproto.OpSearchReadV3}, 0, 0, hgfsproto.AppendSearchReadReply(nil, []hgfsproto.DirEntry{{Name: []byte("a")}})))
	f.Add(session, hgfsproto.AppendReply(nil, hgfsproto.Request{Kind: hgfsproto.KindV4, ID: 3, Op: hgfsproto.OpReadV3}, 0, 0, hgfsproto.AppendReadReply(nil, []byte("data"))))
	// vmxsim's answers to Debian's vmhgfs-fuse in the golden capture.
	golden, _ := os.ReadFile("../testdata/peer/vmhgfs-fuse-12.2.0.jsonl")
	for _, line := range bytes.Split(golden, []byte("\n")) {
		var r struct{ From, Msg, Hex string }
		if json.Unmarshal(line, &r) != nil || r.From != "host" {
			continue
		}
		msg := []byte(r.Msg)
		if r.Hex != "" {
			msg, _ = hex.DecodeString(r.Hex)
		}
		if p, ok := bytes.CutPrefix(msg, []byte("1 ")); ok && len(p) > 8 {
			f.Add(session, p)
		}
	}
	f.Fuzz(func(t *testing.T, sess, reply []byte) {
		tr := &fuzzTransport{replies: [][]byte{nil, sess, reply}}
		ctx := context.Background()
		c, err := New(ctx, Config{Transport: tr})
		if err != nil {
			return
		}
		tr.replies = [][]byte{reply}
		c.Getattr(ctx, "s/a")
		c.ReadDir(ctx, "s")
		c.Statfs(ctx, "s")
		if fl, err := c.Open(ctx, "s/a", OpenFlags{Mode: hgfsproto.OpenModeReadWrite}); err == nil {
			buf := make([]byte, 70000)
			if n, err := fl.ReadAt(ctx, buf, 0); err == nil && n > len(buf) {
				t.Fatalf("read %d into %d", n, len(buf))
			}
			if n, err := fl.WriteAt(ctx, buf[:100], 0); err == nil && n > 100 {
				t.Fatalf("wrote %d of 100", n)
			}
			fl.Close(ctx)
		}
		c.Setattr(ctx, "s/a", SetAttr{Size: new(uint64)})
	})
}
