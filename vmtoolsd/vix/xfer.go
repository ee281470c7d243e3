package vix

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/vmtoolsd/vix/guestops"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// File transfers: a successful InitiateFileTransferFromGuest (188) or
// ToGuest (189) grants its user the HGFS packets (opcode 84) on that one
// path, read-only or writable, for TransferLifetime. The daemon confines
// each packet to a granted path (by name for OPEN_V3 and GETATTR_V3, by
// the handle it assigned for READ_V3, WRITE_V3 and CLOSE_V3); the helper
// authenticates the packet and does the I/O as the user.
const (
	TransferLifetime = 10 * time.Minute
	maxTransferState = 1024
	hgfsMaxPacket    = 0xF800
)

type grant struct {
	write   bool
	expires time.Time
}

type xferHandle struct {
	user, path string
	write      bool
	expires    time.Time
}

type transfers struct {
	grants  map[string]grant // user NUL path
	handles map[uint32]xferHandle
	next    uint32
}

// granted records a successful initiate.
func (s *Service) granted(req *vixproto.Request, user string) {
	var path string
	write := req.OpCode == vixproto.OpInitiateTransferTo
	if write {
		p, err := vixproto.ParseFileOp(req.OpCode, req.Body)
		if err != nil {
			return
		}
		path = p.Path
	} else {
		p, err := vixproto.ParseListFiles(req.Body)
		if err != nil {
			return
		}
		path = p.Path
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireTransfers()
	if s.xfer.grants == nil {
		s.xfer.grants, s.xfer.handles = map[string]grant{}, map[uint32]xferHandle{}
	}
	if len(s.xfer.grants) < maxTransferState {
		s.xfer.grants[user+"\x00"+filepath.Clean(path)] = grant{write: write, expires: s.now().Add(TransferLifetime)}
	}
}

func (s *Service) expireTransfers() {
	now := s.now()
	for k, g := range s.xfer.grants {
		if now.After(g.expires) {
			delete(s.xfer.grants, k)
		}
	}
	for k, h := range s.xfer.handles {
		if now.After(h.expires) {
			delete(s.xfer.handles, k)
		}
	}
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

// hgfs serves an 84 request of user; msg is the request to hand the
// helper (its credential already checked for shape).
func (s *Service) hgfs(ctx context.Context, req *vixproto.Request, msg []byte, user string) (vixproto.Error, uint32, []byte) {
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
	s.mu.Lock()
	s.expireTransfers()
	switch hr.Op {
	case hgfsproto.OpCreateSessionV4, hgfsproto.OpDestroySessionV4:
		s.mu.Unlock()
		e, addl, _ := s.runHelper(ctx, req, vixproto.WithOpCode(msg, vixproto.OpValidateCredentials), user)
		if e != 0 {
			return legacyLoginError(e), addl, nil
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
		g, granted := s.xfer.grants[user+"\x00"+path]
		if !ok || !granted {
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
	default:
		s.mu.Unlock()
		return answer(hgfsproto.StatusOperationNotSupported, nil)
	}
	s.mu.Unlock()
	e, addl, payload := s.runHelperEnv(ctx, req, msg, user, t)
	if e != 0 {
		return legacyLoginError(e), addl, payload
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
