package vmxsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmxsim/vmx"
	"golang.org/x/sys/unix"
)

// Socket names inside a vmxsim directory.
const (
	TCLOSocket = "tclo.sock"
	RPCISocket = "rpci.sock"
	CtlSocket  = "ctl.sock"
	LogFile    = "vmware.log"
)

// Server serves a Core on the unix sockets of a directory: DIR/tclo.sock
// and DIR/rpci.sock speak the vsock DataMap framing, DIR/ctl.sock is the
// HTTP control API.
type Server struct {
	Core *Core
	Dir  string

	// ctl is the control API's router; features add routes to it.
	ctl *http.ServeMux
}

// NewServer returns a server for core in dir.
func NewServer(core *Core, dir string) *Server {
	s := &Server{Core: core, Dir: dir, ctl: http.NewServeMux()}
	s.registerCtl()
	core.HGFS().HandleCtl(s)
	core.Quiesce().HandleCtl(s)
	s.registerFaultCtl()
	return s
}

// Serve listens on the sockets and serves until ctx ends; then it closes
// the listeners and every connection, waits for their goroutines, and
// removes the socket files. ready, if not nil, is called once all three
// sockets are listening.
func (s *Server) Serve(ctx context.Context, ready func()) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("vmxsim: %w", err)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, name := range []string{TCLOSocket, RPCISocket, CtlSocket, VSockSocket} {
		ln, err := listenUnix(filepath.Join(s.Dir, name))
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	wg.Go(func() {
		s.accept(ctx, lns[0], &wg, func(c net.Conn) {
			if err := s.Core.ServeTCLOConn(ctx, c); err != nil && ctx.Err() == nil {
				s.Core.lg.Info("tclo session ended", "err", err)
			}
		})
	})
	wg.Go(func() {
		s.accept(ctx, lns[1], &wg, func(c net.Conn) {
			s.Core.ServeRPCIConn(ctx, c, Caller{Transport: "unix", Privileged: peerUID(c) == 0})
		})
	})
	wg.Go(func() {
		s.accept(ctx, lns[3], &wg, func(c net.Conn) { s.serveVSock(ctx, c) })
	})
	hs := &http.Server{Handler: s.ctl, ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() { hs.Serve(lns[2]) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		hs.Shutdown(sctx)
	})
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	return nil
}

// accept serves each connection of ln in its own goroutine, tracked by wg,
// until ctx ends.
func (s *Server) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup, serve func(net.Conn)) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.Core.lg.Error("accept failed", "err", err)
			}
			return
		}
		wg.Go(func() { serve(c) })
	}
}

// listenUnix listens at path, replacing a stale socket file left by a
// simulator that died, but never one that is still served.
func listenUnix(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("vmxsim: %s is in use by another simulator", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("vmxsim: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// peerUID returns the uid of a unix socket peer (SO_PEERCRED), or -1.
func peerUID(c net.Conn) int {
	if cred := peerCred(c); cred != nil {
		return int(cred.Uid)
	}
	return -1
}

// peerCred returns a unix socket peer's credentials (SO_PEERCRED), or nil
// for any other connection or when the kernel does not say.
func peerCred(c net.Conn) *unix.Ucred {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		if c, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			cred = c
		}
	})
	return cred
}

// HandleCtl adds a route to the control API (pattern as http.ServeMux).
func (s *Server) HandleCtl(pattern string, h http.HandlerFunc) {
	s.ctl.HandleFunc(pattern, h)
}

func (s *Server) registerCtl() {
	s.HandleCtl("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.Core.State())
	})
	s.HandleCtl("POST /tclo", func(w http.ResponseWriter, r *http.Request) {
		cmd, err := io.ReadAll(io.LimitReader(r.Body, MaxGuestMessage+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply, err := s.Core.SendTCLO(r.Context(), string(cmd))
		if err != nil {
			code := http.StatusBadGateway
			if errors.Is(err, ErrNoTools) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(reply)
	})
	s.HandleCtl("POST /power/{op}", func(w http.ResponseWriter, r *http.Request) {
		reply, err := s.Core.PowerOp(r.Context(), r.PathValue("op"))
		if err != nil {
			code := http.StatusBadGateway
			switch {
			case errors.Is(err, ErrNoTools):
				code = http.StatusServiceUnavailable
			case reply == nil && !errors.Is(err, context.DeadlineExceeded):
				if _, ok := PowerOps[r.PathValue("op")]; !ok {
					code = http.StatusBadRequest
				}
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(reply)
	})
	s.HandleCtl("GET /log", func(w http.ResponseWriter, r *http.Request) {
		if s.Core.log.Path() == "" {
			http.Error(w, "no vmware.log", http.StatusNotFound)
			return
		}
		http.ServeFile(w, r, s.Core.log.Path())
	})
}

func writeJSON(w http.ResponseWriter, v any) { vmx.WriteJSON(w, v) }
