// Package hgfsd is the simulated host's HGFS (shared folders) server: it
// answers the HGFS packets a guest sends with the "f" RPCI over host
// directories (one os.Root per share), with sessions, the legacy and V1
// request forms, and fault injection. It needs nothing of the VMX core;
// the core registers Server.RPCI as its "f" handler.
//
// Adding an HGFS op touches the server in one place: ops.go.
package hgfsd

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// Server is the simulated host's shared-folders server. The guest reaches
// it with the RPCI command "f " + packet; the reply is "1 " + packet, or
// "0 " + text when shared folders are disabled. It follows the host's
// rules (docs/architecture.md, "HGFS packets"): V4-header requests with
// sessions, legacy V3 requests in a default session, V1 search ops
// (vmware-hgfsclient), the virtual root listing the shares, and one
// os.Root per share so no name or symlink leaves a share.
//
// Fault injection: Restart (the host server restarts: every session and
// handle becomes stale), SetEnabled (shared folders off: the RPC fails),
// SetShareEnabled, SetNoSessions (an old host without V4), and
// InjectFault (malformed replies).
type Server struct {
	lg        *slog.Logger
	maxPacket uint32

	// mu guards everything below; it is not held during file I/O.
	mu         sync.Mutex
	enabled    bool
	shares     map[string]*hgfsShare
	sessions   map[uint64]*hgfsSession
	legacy     *hgfsSession // the default session of non-session requests
	nextHandle uint32
	noSessions bool
	fault      faultRule
	requests   map[hgfsproto.Op]uint64

	total atomic.Uint64
}

// share is one shared folder. root is nil while the share is disabled
// or its directory cannot be opened (a dangling share).
type hgfsShare struct {
	spec    ShareSpec
	enabled bool
	root    *os.Root
}

// session holds the handles a guest opened.
type hgfsSession struct {
	id        uint64
	maxPacket uint32
	files     map[uint32]*hgfsNode
	searches  map[uint32]*hgfsSearch
}

// node is an open file handle.
type hgfsNode struct {
	mu    sync.Mutex // serializes appends
	f     *os.File
	share *hgfsShare
	write bool
}

// search is a directory snapshot taken at SEARCH_OPEN, as hosts do.
type hgfsSearch struct {
	share   *hgfsShare
	dir     string // the directory in the share ("." for its root)
	entries []hgfsproto.DirEntry
}

// faultRule mangles the next Count replies.
type faultRule struct {
	Mode  string // "truncate" or "short"
	Count int
	Op    hgfsproto.Op // only replies to this op; OpMax means any
}

// Options configure the server.
type Options struct {
	Shares []ShareSpec
	// MaxPacket is the channel's packet size limit offered in session
	// negotiation; 0 means HGFS_LARGE_PACKET_MAX (522240).
	MaxPacket uint32
	Logger    *slog.Logger
}

// maxSessions is MAX_SESSION_COUNT.
const maxSessions = 1024

// New returns a server with shared folders enabled.
func New(opts Options) *Server {
	if opts.MaxPacket == 0 {
		opts.MaxPacket = hgfsproto.LargePacketMax
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Server{
		lg:         opts.Logger,
		maxPacket:  opts.MaxPacket,
		enabled:    true,
		shares:     map[string]*hgfsShare{},
		sessions:   map[uint64]*hgfsSession{},
		nextHandle: 1,
		requests:   map[hgfsproto.Op]uint64{},
	}
	h.legacy = h.newSession(0, hgfsproto.LargePacketMax)
	for _, s := range opts.Shares {
		h.AddShare(s)
	}
	return h
}

func (h *Server) newSession(id uint64, maxPacket uint32) *hgfsSession {
	return &hgfsSession{id: id, maxPacket: maxPacket, files: map[uint32]*hgfsNode{}, searches: map[uint32]*hgfsSearch{}}
}

// AddShare adds (or replaces) a share, enabled. A directory that cannot
// be opened makes a dangling share: listed, but every access fails.
func (h *Server) AddShare(spec ShareSpec) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.shares[spec.Name]; old != nil {
		h.disableLocked(old)
	}
	sh := &hgfsShare{spec: spec}
	h.shares[spec.Name] = sh
	h.enableLocked(sh)
}

func (h *Server) enableLocked(sh *hgfsShare) {
	sh.enabled = true
	r, err := os.OpenRoot(sh.spec.Dir)
	if err != nil {
		h.lg.Warn("hgfs: share directory unusable", "share", sh.spec.Name, "err", err)
		return
	}
	sh.root = r
}

// disableLocked closes the share's root and invalidates every handle
// and search on it.
func (h *Server) disableLocked(sh *hgfsShare) {
	sh.enabled = false
	for _, s := range h.allSessionsLocked() {
		for id, n := range s.files {
			if n.share == sh {
				n.f.Close()
				delete(s.files, id)
			}
		}
		for id, se := range s.searches {
			if se.share == sh {
				delete(s.searches, id)
			}
		}
	}
	if sh.root != nil {
		sh.root.Close()
		sh.root = nil
	}
}

func (h *Server) allSessionsLocked() []*hgfsSession {
	all := []*hgfsSession{h.legacy}
	for _, s := range h.sessions {
		all = append(all, s)
	}
	return all
}

// ErrNoShare is returned for a share name that is not configured.
var ErrNoShare = errors.New("hgfsd: no such share")

// SetShareEnabled enables or disables one share, as the host's UI does:
// a disabled share disappears from the root listing, names under it are
// not found, and its open handles become invalid.
func (h *Server) SetShareEnabled(name string, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	sh := h.shares[name]
	if sh == nil {
		return fmt.Errorf("%w %q", ErrNoShare, name)
	}
	if on && !sh.enabled {
		h.enableLocked(sh)
	} else if !on && sh.enabled {
		h.disableLocked(sh)
	}
	h.lg.Info("hgfs: share toggled", "share", name, "enabled", on)
	return nil
}

// SetEnabled turns shared folders on or off. Off, the "f" RPC fails as
// it does on a host with sharing disabled; turning it off restarts the
// server, so sessions and handles opened before are stale afterwards.
func (h *Server) SetEnabled(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !on {
		h.restartLocked()
	}
	h.enabled = on
}

// Restart simulates the host HGFS server restarting (suspend/resume, a
// VMX restart): every session, handle and search is forgotten.
func (h *Server) Restart() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.restartLocked()
}

func (h *Server) restartLocked() {
	for _, s := range h.allSessionsLocked() {
		for _, n := range s.files {
			n.f.Close()
		}
	}
	h.sessions = map[uint64]*hgfsSession{}
	h.legacy = h.newSession(0, hgfsproto.LargePacketMax)
}

// SetNoSessions makes CREATE_SESSION_V4 fail with PROTOCOL_ERROR, as a
// host without V4 support answers, so clients fall back to legacy headers.
func (h *Server) SetNoSessions(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.noSessions = on
}

// InjectFault mangles the next count replies (to op, e.g. "GETATTR_V3",
// or to any op when op is ""): "truncate" cuts the reply packet short of
// the size its header claims; "short" keeps a valid header but cuts the
// op payload to 7 bytes.
func (h *Server) InjectFault(mode string, count int, op string) error {
	if mode != "truncate" && mode != "short" && mode != "none" {
		return fmt.Errorf("hgfsd: unknown hgfs fault %q (want truncate, short or none)", mode)
	}
	rule := faultRule{Mode: mode, Count: count, Op: hgfsproto.OpMax}
	if op != "" {
		found := false
		for o := range hgfsproto.OpMax {
			if o.String() == op {
				rule.Op, found = o, true
			}
		}
		if !found {
			return fmt.Errorf("hgfsd: unknown hgfs op %q", op)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fault = rule
	if mode == "none" {
		h.fault = faultRule{}
	}
	return nil
}

// ShareState is one share in `vmxsim ctl state`.
type ShareState struct {
	ShareSpec
	Enabled bool `json:"enabled"`
	// Dangling is true when the directory could not be opened.
	Dangling bool `json:"dangling,omitempty"`
}

// State is the HGFS part of `vmxsim ctl state`.
type State struct {
	Enabled  bool         `json:"enabled"`
	Shares   []ShareState `json:"shares"`
	Sessions int          `json:"sessions"`
	// OpenFiles and OpenSearches count handles over all sessions: a
	// client that leaks searches shows here.
	OpenFiles    int `json:"openFiles"`
	OpenSearches int `json:"openSearches"`
	// RoundTrips counts "f" RPCs; Requests counts them by op name.
	RoundTrips uint64            `json:"roundTrips"`
	Requests   map[string]uint64 `json:"requests"`
}

// State returns a snapshot for the control API.
func (h *Server) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := State{Enabled: h.enabled, Sessions: len(h.sessions), RoundTrips: h.total.Load(), Requests: map[string]uint64{}, Shares: []ShareState{}}
	for _, sh := range h.sortedSharesLocked(false) {
		st.Shares = append(st.Shares, ShareState{ShareSpec: sh.spec, Enabled: sh.enabled, Dangling: sh.enabled && sh.root == nil})
	}
	for _, s := range h.allSessionsLocked() {
		st.OpenFiles += len(s.files)
		st.OpenSearches += len(s.searches)
	}
	for op, n := range h.requests {
		st.Requests[op.String()] = n
	}
	return st
}

func (h *Server) sortedSharesLocked(enabledOnly bool) []*hgfsShare {
	var out []*hgfsShare
	for _, sh := range h.shares {
		if !enabledOnly || sh.enabled {
			out = append(out, sh)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// ReplyDisabled is the RPC failure text when shared folders are off.
const ReplyDisabled = "0 HGFS is disabled"

// RPCI answers the "f" RPCI command: args is the HGFS packet.
func (h *Server) RPCI(args []byte) []byte {
	h.mu.Lock()
	enabled := h.enabled
	h.mu.Unlock()
	if !enabled {
		return []byte(ReplyDisabled)
	}
	h.total.Add(1)
	reply := h.dispatch([]byte("1 "), args)
	h.mu.Lock()
	faulty := h.fault.Count > 0
	h.mu.Unlock()
	if !faulty {
		return reply
	}
	req, _ := hgfsproto.ParseRequest(args)
	return append(reply[:2:2], h.mangle(req.Op, reply[2:])...)
}

func (h *Server) mangle(op hgfsproto.Op, reply []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fault.Count <= 0 || (h.fault.Op != hgfsproto.OpMax && h.fault.Op != op) {
		return reply
	}
	h.fault.Count--
	h.lg.Info("hgfs: mangling reply", "fault", h.fault.Mode, "left", h.fault.Count)
	switch h.fault.Mode {
	case "truncate":
		return reply[:len(reply)/2]
	case "short":
		if hgfsproto.IsV4(reply) && len(reply) >= hgfsproto.HeaderSize {
			out := append([]byte(nil), reply[:hgfsproto.HeaderSize]...)
			out = append(out, make([]byte, 7)...)
			h, _, err := hgfsproto.ParseHeader(reply)
			if err == nil {
				h.PacketSize = uint32(len(out))
				hgfsproto.PutHeader(out, h)
			}
			return out
		}
		return reply[:min(len(reply), 9)]
	}
	return reply
}

// Dispatch answers one HGFS request packet with a reply packet.
func (h *Server) Dispatch(p []byte) []byte { return h.dispatch(nil, p) }

// dispatch appends the reply to p to dst.
func (h *Server) dispatch(dst, p []byte) []byte {
	req, err := hgfsproto.ParseRequest(p)
	if errors.Is(err, hgfsproto.ErrNoReply) {
		// The host library drops these; the RPC layer still answers, and
		// the ping's answer is discarded by clients.
		return hgfsproto.AppendLegacyHeader(dst, req.ID, uint32(hgfsproto.StatusProtocolError))
	}
	if err != nil {
		h.lg.Debug("hgfs: malformed request", "err", err)
		return hgfsproto.AppendReply(dst, req, req.Header.SessionID, hgfsproto.StatusProtocolError, nil)
	}
	h.mu.Lock()
	h.requests[req.Op]++
	h.mu.Unlock()

	if req.Kind == hgfsproto.KindV4 {
		switch req.Op {
		case hgfsproto.OpCreateSessionV4:
			return append(dst, h.createSession(req)...)
		case hgfsproto.OpDestroySessionV4:
			return append(dst, h.destroySession(req)...)
		}
	}
	sess, ok := h.sessionFor(req)
	if !ok {
		return hgfsproto.AppendReply(dst, req, hgfsproto.InvalidSessionID, hgfsproto.StatusStaleSession, nil)
	}
	if req.Op == hgfsproto.OpReadV3 && req.Kind != hgfsproto.KindV1 {
		return h.readReply(dst, sess, req)
	}
	payload, st := h.serve(sess, req)
	if st != hgfsproto.StatusSuccess {
		h.lg.Debug("hgfs: request failed", "op", req.Op, "status", st)
	}
	if len(dst)+hgfsproto.HeaderSize+len(payload) > cap(dst) {
		dst = append(make([]byte, 0, len(dst)+hgfsproto.HeaderSize+len(payload)), dst...)
	}
	return hgfsproto.AppendReply(dst, req, sess.id, st, payload)
}

func (h *Server) sessionFor(req hgfsproto.Request) (*hgfsSession, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Kind != hgfsproto.KindV4 {
		return h.legacy, true
	}
	s, ok := h.sessions[req.Header.SessionID]
	return s, ok
}

func (h *Server) createSession(req hgfsproto.Request) []byte {
	cs, err := hgfsproto.DecodeCreateSessionRequest(req.Payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil || h.noSessions:
		return hgfsproto.AppendReply(nil, req, hgfsproto.InvalidSessionID, hgfsproto.StatusProtocolError, nil)
	case len(h.sessions) >= maxSessions:
		return hgfsproto.AppendReply(nil, req, hgfsproto.InvalidSessionID, hgfsproto.StatusTooManySessions, nil)
	}
	mp := h.maxPacket
	if cs.MaxPacketSize != 0 && cs.MaxPacketSize < mp {
		mp = cs.MaxPacketSize
	}
	id := rand.Uint64()
	for id == hgfsproto.InvalidSessionID || id == 0 || h.sessions[id] != nil {
		id = rand.Uint64()
	}
	h.sessions[id] = h.newSession(id, mp)
	rep := hgfsproto.CreateSessionReply{SessionID: id, MaxPacketSize: mp, Flags: hgfsproto.SessionMaxPacketSizeValid, Capabilities: capabilities()}
	return hgfsproto.AppendReply(nil, req, id, hgfsproto.StatusSuccess, rep.Append(nil))
}

func (h *Server) destroySession(req hgfsproto.Request) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := req.Header.SessionID
	s, ok := h.sessions[id]
	if !ok {
		return hgfsproto.AppendReply(nil, req, hgfsproto.InvalidSessionID, hgfsproto.StatusStaleSession, nil)
	}
	for _, n := range s.files {
		n.f.Close()
	}
	delete(h.sessions, id)
	return hgfsproto.AppendReply(nil, req, id, hgfsproto.StatusSuccess, hgfsproto.AppendReserved(nil))
}

// replyBudget is how many op-payload bytes a reply may carry.
func replyBudget(s *hgfsSession, req hgfsproto.Request) int {
	switch req.Kind {
	case hgfsproto.KindV4:
		return int(s.maxPacket) - hgfsproto.HeaderSize
	case hgfsproto.KindLegacyV3:
		if req.Op == hgfsproto.OpReadV3 {
			return hgfsproto.LargePacketMax - hgfsproto.LegacyHeaderSize
		}
	}
	return hgfsproto.PacketMax - hgfsproto.LegacyHeaderSize
}

// resolve maps a CP name to a share and a slash path inside it; a nil
// share with ok means the virtual root.
func (h *Server) resolve(fn hgfsproto.FileName) (*hgfsShare, string, hgfsproto.Status) {
	if fn.Flags&hgfsproto.FileNameUseFileDesc != 0 {
		return nil, "", hgfsproto.StatusInvalidParameter
	}
	comps, err := hgfsproto.ParseCPName(fn.Name)
	if err != nil {
		return nil, "", hgfsproto.StatusInvalidName
	}
	if len(comps) == 0 {
		return nil, "", hgfsproto.StatusSuccess
	}
	for _, c := range comps {
		if len(c) > 255 {
			return nil, "", hgfsproto.StatusNameTooLong
		}
	}
	h.mu.Lock()
	sh := h.shares[comps[0]]
	h.mu.Unlock()
	if sh == nil || !sh.enabled {
		return nil, "", hgfsproto.StatusNoSuchFileOrDir
	}
	rel := path.Join(comps[1:]...)
	if rel == "" {
		rel = "."
	}
	return sh, rel, hgfsproto.StatusSuccess
}

// shareRoot returns the share's root, or GENERIC_ERROR for a dangling
// share (hosts answer EIO so a listed name never claims to be missing).
func (h *Server) shareRoot(sh *hgfsShare) (*os.Root, hgfsproto.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !sh.enabled {
		return nil, hgfsproto.StatusNoSuchFileOrDir
	}
	if sh.root == nil {
		return nil, hgfsproto.StatusGenericError
	}
	return sh.root, hgfsproto.StatusSuccess
}

func (h *Server) allocHandle() uint32 {
	h.nextHandle++
	if h.nextHandle == hgfsproto.InvalidHandle || h.nextHandle == 0 {
		h.nextHandle = 1
	}
	return h.nextHandle
}
