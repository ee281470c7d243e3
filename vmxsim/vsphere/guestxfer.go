package vsphere

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// File transfer, as hostd and the VMX do it: InitiateFileTransfer*
// checks the path in the guest (VIX 188/189) and returns a single-use
// https://*/guestFile?id=..&token=.. URL that lives 10 minutes; a GET or
// PUT there moves the bytes as HGFS packets, each in its own VIX 84
// request with the transfer's credentials (session, open, read or
// write in bounded chunks, close, destroy). Nothing is held whole.
const (
	transferLifetime = 10 * time.Minute
	maxTransfers     = 64
	readChunk        = 0xF000 // a READ_V3 reply fits one TCLO reply
	writeChunk       = 0xE000 // a WRITE_V3 request fits MaxUserInput
)

type transfer struct {
	vm      types.ManagedObjectReference
	auth    types.BaseGuestAuthentication
	path    string
	upload  bool
	size    int64
	token   string
	expires time.Time
}

type transfers struct {
	mu   sync.Mutex
	next int
	m    map[string]*transfer
}

func (x *transfers) add(t *transfer) (string, error) {
	var tok [16]byte
	rand.Read(tok[:])
	t.token = hex.EncodeToString(tok[:])
	t.expires = time.Now().Add(transferLifetime)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = map[string]*transfer{}
	}
	for id, o := range x.m {
		if time.Now().After(o.expires) {
			delete(x.m, id)
		}
	}
	if len(x.m) >= maxTransfers {
		return "", errors.New("too many transfers in flight")
	}
	x.next++
	id := strconv.Itoa(x.next)
	x.m[id] = t
	return "https://*/guestFile?id=" + id + "&token=" + t.token, nil
}

// take removes and returns the live transfer id/token (single use).
func (x *transfers) take(id, token string, upload bool) *transfer {
	x.mu.Lock()
	defer x.mu.Unlock()
	t := x.m[id]
	if t == nil || t.token != token || t.upload != upload || time.Now().After(t.expires) {
		return nil
	}
	delete(x.m, id)
	return t
}

func (m *guestFileManager) InitiateFileTransferToGuest(ctx *simulator.Context, req *types.InitiateFileTransferToGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferToGuestBody)
	op := &vixproto.FileOp{Op: vixproto.OpInitiateTransferTo, Path: req.GuestFilePath, Flag: req.Overwrite}
	if w, ok := req.FileAttributes.(*types.GuestWindowsFileAttributes); ok {
		if w.Hidden != nil {
			op.Options |= vixproto.AttrSetHidden
		}
		if w.ReadOnly != nil {
			op.Options |= vixproto.AttrSetReadOnly
		}
	}
	if _, f := m.g.call(req.Vm, req.Auth, vixproto.OpInitiateTransferTo, op.Encode()); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	u, err := m.g.xfer.add(&transfer{vm: req.Vm, auth: req.Auth, path: req.GuestFilePath, upload: true, size: req.FileSize})
	if err != nil {
		body.Fault_ = fault(&types.SystemError{Reason: err.Error()})
		return body
	}
	body.Res = &types.InitiateFileTransferToGuestResponse{Returnval: u}
	return body
}

func (m *guestFileManager) InitiateFileTransferFromGuest(ctx *simulator.Context, req *types.InitiateFileTransferFromGuest) soap.HasFault {
	body := new(methods.InitiateFileTransferFromGuestBody)
	p, f := m.g.call(req.Vm, req.Auth, vixproto.OpInitiateTransferFrom, (&vixproto.ListFiles{Path: req.GuestFilePath}).Encode())
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	fi := vixproto.ParseFileInfos(string(p))
	if len(fi) != 1 {
		body.Fault_ = fault(&types.CannotAccessFile{})
		return body
	}
	info := guestFileInfo(fi[0])
	u, err := m.g.xfer.add(&transfer{vm: req.Vm, auth: req.Auth, path: req.GuestFilePath, size: info.Size})
	if err != nil {
		body.Fault_ = fault(&types.SystemError{Reason: err.Error()})
		return body
	}
	body.Res = &types.InitiateFileTransferFromGuestResponse{Returnval: types.FileTransferInformation{Attributes: info.Attributes, Size: info.Size, Url: u}}
	return body
}

// hgfsSession is the VMX's HGFS client for one transfer.
type hgfsSession struct {
	g       *guestOps
	t       *transfer
	id      uint32
	session uint64
}

var errHGFSStatus = errors.New("hgfs status")

func (s *hgfsSession) call(op hgfsproto.Op, payload []byte) ([]byte, error) {
	s.id++
	pkt := hgfsproto.AppendRequestV4(nil, s.id, op, s.session, payload)
	p, f := s.g.callFlags(s.t.vm, s.t.auth, vixproto.OpHgfsSendPacket, vixproto.FlagGuestReturnsBinary, (&vixproto.HgfsPacket{Packet: pkt}).Encode())
	if f != nil {
		return nil, fmt.Errorf("%T", f)
	}
	r, err := hgfsproto.ParseReply(p)
	if err != nil {
		return nil, err
	}
	if r.Status != hgfsproto.StatusSuccess {
		return nil, fmt.Errorf("%w %v on %v", errHGFSStatus, r.Status, op)
	}
	return r.Payload, nil
}

func (s *hgfsSession) open(write bool) (uint32, error) {
	p, err := s.call(hgfsproto.OpCreateSessionV4, hgfsproto.CreateSessionRequest{MaxPacketSize: 0xF800}.Append(nil))
	if err != nil {
		return 0, err
	}
	cs, err := hgfsproto.DecodeCreateSessionReply(p)
	if err != nil {
		return 0, err
	}
	s.session = cs.SessionID
	// The name is only read when its valid bit is set: open-vm-tools'
	// server answers PROTOCOL_ERROR to an OPEN_V3 without
	// OpenValidFileName (the first Debian peer run failed so). A new
	// file is created 0644, the API's default permissions.
	o := hgfsproto.OpenRequest{Mask: hgfsproto.OpenValidMode | hgfsproto.OpenValidFlags | hgfsproto.OpenValidFileName,
		Name: hgfsproto.PathName(hgfsproto.CPName("root/" + s.t.path))}
	if write {
		o.Mode, o.Flags = hgfsproto.OpenModeWriteOnly, hgfsproto.OpenFlagCreateEmpty
		o.Mask |= hgfsproto.OpenValidOwnerPerms | hgfsproto.OpenValidGroupPerms | hgfsproto.OpenValidOtherPerms
		o.OwnerPerms, o.GroupPerms, o.OtherPerms = 6, 4, 4
	}
	p, err = s.call(hgfsproto.OpOpenV3, o.Append(nil))
	if err != nil {
		return 0, err
	}
	r, err := hgfsproto.DecodeOpenReply(p)
	return r.Handle, err
}

func (s *hgfsSession) close(h uint32) {
	s.call(hgfsproto.OpCloseV3, hgfsproto.AppendHandleRequest(nil, h))
	s.call(hgfsproto.OpDestroySessionV4, hgfsproto.AppendReserved(nil))
}

// ServeHTTP serves the transfer URLs.
func (g *guestOps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	upload := r.Method == http.MethodPut
	if !upload && r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	t := g.xfer.take(q.Get("id"), q.Get("token"), upload)
	if t == nil {
		http.NotFound(w, r)
		return
	}
	s := &hgfsSession{g: g, t: t}
	h, err := s.open(upload)
	if err != nil {
		g.v.lg.Info("vsphere: guest file transfer refused", "path", t.path, "err", err)
		http.Error(w, err.Error(), httpStatus(err))
		return
	}
	defer s.close(h)
	if upload {
		err = s.upload(h, r.Body)
		if err == nil {
			w.WriteHeader(http.StatusOK)
		} else {
			http.Error(w, err.Error(), httpStatus(err))
		}
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		err = s.download(h, w)
	}
	if err != nil {
		g.v.lg.Info("vsphere: guest file transfer failed", "path", t.path, "err", err)
	}
}

func httpStatus(err error) int {
	if errors.Is(err, errHGFSStatus) {
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func (s *hgfsSession) upload(h uint32, body io.Reader) error {
	buf := make([]byte, writeChunk)
	var off uint64
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			p, err := s.call(hgfsproto.OpWriteV3, hgfsproto.WriteRequest{Handle: h, Offset: off, Data: buf[:n]}.Append(nil))
			if err != nil {
				return err
			}
			if wn, err := hgfsproto.DecodeWriteReply(p, uint32(n)); err != nil || int(wn) != n {
				return fmt.Errorf("short write at %d: %v", off, err)
			}
			off += uint64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func (s *hgfsSession) download(h uint32, w http.ResponseWriter) error {
	var off uint64
	for {
		p, err := s.call(hgfsproto.OpReadV3, hgfsproto.ReadRequest{Handle: h, Offset: off, Size: readChunk}.Append(nil))
		if err != nil {
			if off == 0 {
				http.Error(w, err.Error(), httpStatus(err))
			}
			return err
		}
		data, err := hgfsproto.DecodeReadReply(p, readChunk)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		off += uint64(len(data))
	}
}
