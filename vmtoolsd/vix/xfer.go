package vix

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/vmtoolsd/vix/guestops"
	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// File transfers: a successful InitiateFileTransferFromGuest (188) or
// ToGuest (189) grants its user the HGFS packets (opcode 84) on that one
// path, read-only or writable, for TransferLifetime. The daemon confines
// each packet to a granted path (by name for OPEN_V3 and GETATTR_V3, by
// the handle it assigned for READ_V3, WRITE_V3 and CLOSE_V3).
//
// One helper serves a whole transfer: the initiate runs in a
// vmware-vix-helper in transfer mode, which authenticates it with PAM,
// becomes the user, answers, and stays to serve that path's packets
// over its pipes. A packet goes to it only when its credential equals
// the one that helper authenticated (an HMAC of name and password under
// a key of this daemon, compared in constant time); any other packet,
// or one arriving after the helper ended, starts a new helper that
// authenticates it with PAM first. The helper ends when the transfer's
// file is closed, after TransferIdle without a packet, when the grant
// expires, or when vmtoolsd stops.
const (
	TransferLifetime = 10 * time.Minute
	// TransferIdle is how long a transfer helper waits for a packet
	// (Service.TransferIdle overrides it).
	TransferIdle     = 30 * time.Second
	maxTransferState = 1024
	maxXferHelpers   = 32
	hgfsMaxPacket    = 0xF800
)

type grant struct {
	write   bool
	expires time.Time
	digest  [sha256.Size]byte
	h       *xferHelper // the live helper of the transfer, or nil
}

type xferHandle struct {
	user, path string
	write      bool
	expires    time.Time
}

type transfers struct {
	grants  map[string]*grant // user NUL path
	handles map[uint32]xferHandle
	next    uint32
	live    int // helpers running
	closing sync.WaitGroup
	keyOnce sync.Once
	key     [32]byte
}

// xferHelper is a running transfer helper.
type xferHelper struct {
	mu      sync.Mutex // one frame exchange at a time
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     io.ReadCloser
	stderr  bytes.Buffer
	idle    *time.Timer
	idleFor time.Duration
	dead    bool
}

// credDigest identifies a credential without keeping it.
func (s *Service) credDigest(name string, password []byte) [sha256.Size]byte {
	s.xfer.keyOnce.Do(func() { rand.Read(s.xfer.key[:]) })
	m := hmac.New(sha256.New, s.xfer.key[:])
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(password)
	return [sha256.Size]byte(m.Sum(nil))
}

// initiate runs an InitiateFileTransfer request in a transfer helper and,
// when it succeeds, grants user the path with that helper serving it.
func (s *Service) initiate(ctx context.Context, req *vixproto.Request, msg []byte, user string, digest [sha256.Size]byte) (vixproto.Error, uint32, []byte) {
	var path string
	write := req.OpCode == vixproto.OpInitiateTransferTo
	if write {
		p, err := vixproto.ParseFileOp(req.OpCode, req.Body)
		if err != nil {
			return err.(vixproto.Error), 0, nil
		}
		path = p.Path
	} else {
		p, err := vixproto.ParseListFiles(req.Body)
		if err != nil {
			return err.(vixproto.Error), 0, nil
		}
		path = p.Path
	}
	if !strings.HasPrefix(path, "/") {
		// Relative paths are checked (and refused) by the one-shot helper.
		return s.runHelper(ctx, req, msg, user)
	}
	t := guestops.Transfer{Path: filepath.Clean(path), Write: write}
	h, e, addl, payload := s.startXfer(msg, t)
	if e != 0 || h == nil {
		return e, addl, payload
	}
	s.mu.Lock()
	s.expireTransfers()
	if s.xfer.grants == nil {
		s.xfer.grants, s.xfer.handles = map[string]*grant{}, map[uint32]xferHandle{}
	}
	key := user + "\x00" + t.Path
	if old := s.xfer.grants[key]; old != nil {
		s.retire(old)
	}
	if len(s.xfer.grants) < maxTransferState && !s.stopped {
		s.xfer.grants[key] = &grant{write: write, expires: s.now().Add(TransferLifetime), digest: digest, h: h}
		h = nil
	}
	s.mu.Unlock()
	if h != nil {
		s.closeHelper(h)
	}
	return e, addl, payload
}

// startXfer starts a transfer helper for t and hands it msg (an
// initiate or an 84 packet whose handle t carries) as its first,
// authenticated request. The helper is returned only if it is to go on
// serving (its request succeeded and a slot is free); otherwise it has
// been told to end.
func (s *Service) startXfer(msg []byte, t guestops.Transfer) (*xferHelper, vixproto.Error, uint32, []byte) {
	if s.Helper == "" {
		return nil, vixproto.ErrFail, 0, nil
	}
	h := &xferHelper{cmd: exec.Command(s.Helper)}
	h.cmd.Env = append(os.Environ(), helper.TransferEnv+"="+helper.EncodeTransfer(t))
	h.cmd.Stderr = &h.stderr
	var err error
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		return nil, vixproto.ErrFail, 0, nil
	}
	if h.out, err = h.cmd.StdoutPipe(); err != nil {
		h.in.Close()
		return nil, vixproto.ErrFail, 0, nil
	}
	s.mu.Lock()
	stopped := s.stopped
	if !stopped {
		s.xfer.live++
	}
	s.mu.Unlock()
	if stopped {
		h.in.Close()
		h.out.Close()
		return nil, vixproto.ErrFail, 0, nil
	}
	if err := h.cmd.Start(); err != nil {
		s.lg().Error("cannot start the guest-operations helper", "helper", s.Helper, "err", err)
		h.in.Close()
		h.out.Close()
		s.mu.Lock()
		s.xfer.live--
		s.mu.Unlock()
		return nil, vixproto.ErrFail, 0, nil
	}
	h.idleFor = s.TransferIdle
	if h.idleFor <= 0 {
		h.idleFor = TransferIdle
	}
	h.idle = time.AfterFunc(h.idleFor, func() { s.idleHelper(h) })
	first := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(msg)), t.Handle)
	first = append(first, msg...)
	reply, err := h.exchange(helper.FrameRequest, first)
	clear(first)
	if err != nil {
		s.closeHelper(h)
		return nil, vixproto.ErrFail, 0, nil
	}
	e, addl, payload, _, perr := vixproto.ParseReply(reply)
	if perr != nil {
		s.closeHelper(h)
		return nil, vixproto.ErrFail, 0, nil
	}
	s.mu.Lock()
	full := s.xfer.live > maxXferHelpers
	s.mu.Unlock()
	if e != 0 || full {
		s.closeHelper(h)
		return nil, e, addl, payload
	}
	return h, e, addl, payload
}

// exchange writes one frame to the helper and reads its reply frame.
func (h *xferHelper) exchange(kind byte, data []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead {
		return nil, errors.New("transfer helper ended")
	}
	h.idle.Reset(h.idleFor)
	if err := helper.WriteFrame(h.in, kind, data); err != nil {
		return nil, err
	}
	k, reply, err := helper.ReadFrame(h.out, vixproto.MaxRequestSize)
	if err != nil {
		return nil, err
	}
	if k != helper.FrameReply {
		return nil, fmt.Errorf("helper frame %q", k)
	}
	return reply, nil
}

// packet has h serve one HGFS packet on handle.
func (h *xferHelper) packet(handle uint32, pkt []byte) ([]byte, error) {
	data := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(pkt)), handle)
	return h.exchange(helper.FramePacket, append(data, pkt...))
}

// closeHelper ends h: its input is closed, so it closes its file and
// exits, and is waited for.
func (s *Service) closeHelper(h *xferHelper) {
	h.mu.Lock()
	if h.dead {
		h.mu.Unlock()
		return
	}
	h.dead = true
	h.idle.Stop()
	h.in.Close()
	h.mu.Unlock()
	io.Copy(io.Discard, h.out)
	h.cmd.Wait()
	if h.stderr.Len() > 0 {
		s.lg().Debug("guest-operations transfer helper", "stderr", h.stderr.String())
	}
	s.mu.Lock()
	s.xfer.live--
	s.mu.Unlock()
}

// retire detaches g's helper and ends it in the background; s.mu is
// held.
func (s *Service) retire(g *grant) {
	if h := g.h; h != nil {
		g.h = nil
		s.xfer.closing.Go(func() { s.closeHelper(h) })
	}
}

// idleHelper ends h after TransferIdle without a packet.
func (s *Service) idleHelper(h *xferHelper) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return // stopXfer ends it
	}
	for _, g := range s.xfer.grants {
		if g.h == h {
			g.h = nil
		}
	}
	s.xfer.closing.Add(1)
	s.mu.Unlock()
	defer s.xfer.closing.Done()
	s.closeHelper(h)
}

// stopXfer ends every transfer helper; s.stopped is set.
func (s *Service) stopXfer() {
	s.mu.Lock()
	var hs []*xferHelper
	for _, g := range s.xfer.grants {
		if g.h != nil {
			hs = append(hs, g.h)
			g.h = nil
		}
	}
	s.mu.Unlock()
	for _, h := range hs {
		s.closeHelper(h)
	}
	s.xfer.closing.Wait()
}

func (s *Service) expireTransfers() {
	now := s.now()
	for k, g := range s.xfer.grants {
		if now.After(g.expires) {
			s.retire(g)
			delete(s.xfer.grants, k)
		}
	}
	for k, h := range s.xfer.handles {
		if now.After(h.expires) {
			delete(s.xfer.handles, k)
		}
	}
}

// authenticated reports whether user holds a live grant whose helper
// authenticated digest. CREATE_SESSION_V4 and DESTROY_SESSION_V4, which
// touch no file, are answered without a new PAM conversation then.
func (s *Service) authenticated(user string, digest [sha256.Size]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireTransfers()
	for k, g := range s.xfer.grants {
		if strings.HasPrefix(k, user+"\x00") && hmac.Equal(g.digest[:], digest[:]) {
			return true
		}
	}
	return false
}

// viaHelper serves one HGFS packet of the transfer of t (granted under
// key): by the grant's helper when it authenticated this credential,
// else by a new helper that authenticates msg first and then, if the
// grant is still there, becomes its helper.
func (s *Service) viaHelper(key string, t guestops.Transfer, digest [sha256.Size]byte, msg, pkt []byte) (vixproto.Error, uint32, []byte) {
	s.mu.Lock()
	var h *xferHelper
	if g := s.xfer.grants[key]; g != nil && g.h != nil && hmac.Equal(g.digest[:], digest[:]) {
		h = g.h
	}
	s.mu.Unlock()
	if h != nil {
		if rep, err := h.packet(t.Handle, pkt); err == nil {
			return 0, 0, rep
		}
		s.mu.Lock()
		if g := s.xfer.grants[key]; g != nil && g.h == h {
			s.retire(g)
		}
		s.mu.Unlock()
	}
	h, e, addl, payload := s.startXfer(msg, t)
	if e != 0 {
		return legacyLoginError(e), addl, payload
	}
	if h != nil {
		s.mu.Lock()
		if g := s.xfer.grants[key]; g != nil && !s.stopped {
			s.retire(g)
			g.h, g.digest = h, digest
			h = nil
		}
		s.mu.Unlock()
		if h != nil {
			s.closeHelper(h)
		}
	}
	return 0, addl, payload
}

// cpPath is the guest path of a CP name on share "root".
func cpPath(name []byte) (string, bool) {
	comps := strings.Split(string(name), "\x00")
	if len(comps) < 2 || comps[0] != "root" {
		return "", false
	}
	for _, c := range comps[1:] {
		if c == "" || c == "." || c == ".." || strings.Contains(c, "/") {
			return "", false
		}
	}
	return "/" + strings.Join(comps[1:], "/"), true
}

// hgfs serves an 84 request of user; msg is the request to hand a
// helper (its credential already checked for shape), digest identifies
// its credential.
func (s *Service) hgfs(ctx context.Context, req *vixproto.Request, msg []byte, user string, digest [sha256.Size]byte) (vixproto.Error, uint32, []byte) {
	p, err := vixproto.ParseHgfsPacket(req.Body)
	if err != nil {
		return err.(vixproto.Error), 0, nil
	}
	hr, err := hgfsproto.ParseRequest(p.Packet)
	if err != nil {
		return vixproto.ErrInvalidMessageBody, 0, nil
	}
	answer := func(st hgfsproto.Status, payload []byte) (vixproto.Error, uint32, []byte) {
		return 0, 0, hgfsproto.AppendReply(nil, hr, hr.Header.SessionID, st, payload)
	}
	var t guestops.Transfer
	var key string
	s.mu.Lock()
	s.expireTransfers()
	switch hr.Op {
	case hgfsproto.OpCreateSessionV4, hgfsproto.OpDestroySessionV4:
		s.mu.Unlock()
		if !s.authenticated(user, digest) {
			e, addl, _ := s.runHelper(ctx, req, vixproto.WithOpCode(msg, vixproto.OpValidateCredentials), user)
			if e != 0 {
				return legacyLoginError(e), addl, nil
			}
		}
		if hr.Op == hgfsproto.OpDestroySessionV4 {
			return answer(0, hgfsproto.AppendReserved(nil))
		}
		return answer(0, hgfsproto.CreateSessionReply{SessionID: uint64(s.now().UnixNano()), MaxPacketSize: hgfsMaxPacket}.Append(nil))
	case hgfsproto.OpOpenV3, hgfsproto.OpGetattrV3:
		var name hgfsproto.FileName
		if hr.Op == hgfsproto.OpOpenV3 {
			o, err := hgfsproto.DecodeOpenRequest(hr.Payload)
			name = o.Name
			if err != nil {
				s.mu.Unlock()
				return answer(hgfsproto.StatusProtocolError, nil)
			}
		} else {
			_, n, err := hgfsproto.DecodeHintsRequest(hr.Payload)
			name = n
			if err != nil {
				s.mu.Unlock()
				return answer(hgfsproto.StatusProtocolError, nil)
			}
		}
		path, ok := cpPath(name.Name)
		key = user + "\x00" + path
		g := s.xfer.grants[key]
		if !ok || g == nil {
			s.mu.Unlock()
			return answer(hgfsproto.StatusAccessDenied, nil)
		}
		t = guestops.Transfer{Path: path, Write: g.write}
		if hr.Op == hgfsproto.OpOpenV3 {
			if len(s.xfer.handles) >= maxTransferState {
				s.mu.Unlock()
				return answer(hgfsproto.StatusTooManySessions, nil)
			}
			s.xfer.next++
			t.Handle = s.xfer.next
		}
	case hgfsproto.OpReadV3, hgfsproto.OpWriteV3, hgfsproto.OpCloseV3:
		if len(hr.Payload) < 4 {
			s.mu.Unlock()
			return answer(hgfsproto.StatusProtocolError, nil)
		}
		h := binary.LittleEndian.Uint32(hr.Payload)
		xh, ok := s.xfer.handles[h]
		if !ok || xh.user != user {
			s.mu.Unlock()
			return answer(hgfsproto.StatusInvalidHandle, nil)
		}
		t = guestops.Transfer{Path: xh.path, Write: xh.write, Handle: h}
		key = user + "\x00" + xh.path
	default:
		s.mu.Unlock()
		return answer(hgfsproto.StatusOperationNotSupported, nil)
	}
	s.mu.Unlock()
	e, addl, payload := s.viaHelper(key, t, digest, msg, p.Packet)
	if e != 0 {
		return e, addl, payload
	}
	rep, err := hgfsproto.ParseReply(payload)
	if err != nil || rep.Status != 0 {
		return e, addl, payload
	}
	s.mu.Lock()
	switch hr.Op {
	case hgfsproto.OpOpenV3:
		s.xfer.handles[t.Handle] = xferHandle{user: user, path: t.Path, write: t.Write, expires: s.now().Add(TransferLifetime)}
	case hgfsproto.OpCloseV3:
		delete(s.xfer.handles, t.Handle)
		// The transfer's file is closed: its helper ends (a later
		// packet on this grant authenticates afresh).
		open := false
		for _, xh := range s.xfer.handles {
			open = open || (xh.user == user && xh.path == t.Path)
		}
		if g := s.xfer.grants[key]; g != nil && !open {
			s.retire(g)
		}
	}
	s.mu.Unlock()
	return e, addl, payload
}

// legacyLoginError: 84 is a legacy opcode, for which open-vm-tools
// rewrites 3050 into 3015.
func legacyLoginError(e vixproto.Error) vixproto.Error {
	if e == vixproto.ErrInvalidLoginCredentials {
		return vixproto.ErrGuestUserPermissions
	}
	return e
}
