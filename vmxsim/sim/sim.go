// Package sim assembles the simulated VMX: the core (package vmxsim), its
// unix-socket server and control API on one directory, and, when asked,
// the backdoor that the ptrace trap serves and the vSphere front end. It
// is what `vmxsim serve` and `vmxsim run` start, and what a program that
// wants a simulator in process starts.
package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/backdoor"
	"github.com/govmtools/govmtools/vmxsim/vsphere"
)

// Options configure a Sim.
type Options struct {
	// Dir holds the sockets (tclo.sock, rpci.sock, ctl.sock) and
	// vmware.log; it is created if missing.
	Dir string
	// Core configures the VMX core; an empty LogPath means
	// Dir/vmware.log.
	Core vmxsim.Options
	// GuestInfo are the guestinfo variables the VM is configured with,
	// as KEY, VALUE pairs (a .vmx file's guestinfo.KEY = "VALUE").
	GuestInfo [][2]string
	// Backdoor, if set, gives the simulator the backdoor the ptrace trap
	// serves (vmxsim run), with its fault injection in the control API.
	Backdoor *backdoor.Options
	// VSphere, if set, starts the vSphere front end on VSphere.Addr.
	VSphere *vsphere.Options
}

// Sim is one assembled simulator. New builds it, Start serves it, Close
// stops it; Sim owns every goroutine it starts.
type Sim struct {
	Dir      string
	Core     *vmxsim.Core
	Server   *vmxsim.Server
	Backdoor *backdoor.Server  // nil unless Options.Backdoor
	VSphere  *vsphere.FrontEnd // nil unless Options.VSphere; set by Start

	opts    Options
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	serveMu sync.Mutex
	serve   error // what Server.Serve returned
}

// New builds the core, its server on opts.Dir and the backdoor; nothing is
// served until Start.
func New(opts Options) (*Sim, error) {
	if opts.Dir == "" {
		return nil, errors.New("vmxsim: the simulator needs a directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("vmxsim: %w", err)
	}
	if opts.Core.LogPath == "" {
		opts.Core.LogPath = filepath.Join(opts.Dir, vmxsim.LogFile)
	}
	core, err := vmxsim.New(opts.Core)
	if err != nil {
		return nil, err
	}
	for _, kv := range opts.GuestInfo {
		core.SetGuestInfoVar(kv[0], kv[1])
	}
	s := &Sim{Dir: opts.Dir, Core: core, Server: vmxsim.NewServer(core, opts.Dir), opts: opts}
	if opts.Backdoor != nil {
		s.Backdoor = backdoor.New(core, *opts.Backdoor)
		s.Backdoor.HandleCtl(s.Server)
	}
	return s, nil
}

// Start serves the simulator until ctx ends or Close: it starts the
// vSphere front end if asked, listens on the sockets and returns once all
// three accept connections. On error nothing is left running; Close still
// releases the core.
func (s *Sim) Start(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	if o := s.opts.VSphere; o != nil {
		vs, err := vsphere.New(ctx, s.Core, *o)
		if err != nil {
			return err
		}
		s.VSphere = vs
		vs.HandleCtl(s.Server)
		s.wg.Go(func() { vs.Run(ctx) })
	}
	if s.Backdoor != nil {
		s.wg.Go(func() { s.Backdoor.Run(ctx) })
	}
	ready := make(chan struct{})
	served := make(chan struct{})
	s.wg.Go(func() {
		defer close(served)
		err := s.Server.Serve(ctx, func() { close(ready) })
		s.serveMu.Lock()
		s.serve = err
		s.serveMu.Unlock()
	})
	select {
	case <-ready:
		return nil
	case <-served:
		s.cancel()
		s.wg.Wait()
		return s.serveErr()
	}
}

func (s *Sim) serveErr() error {
	s.serveMu.Lock()
	defer s.serveMu.Unlock()
	return s.serve
}

// Wait waits until the simulator has stopped (its context ended or Close)
// and every goroutine it started has ended; it returns what serving the
// sockets returned.
func (s *Sim) Wait() error {
	s.wg.Wait()
	return s.serveErr()
}

// Close stops serving, waits for every goroutine, removes the sockets and
// closes the vSphere front end and vmware.log.
func (s *Sim) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	err := s.Wait()
	if s.VSphere != nil {
		s.VSphere.Close()
	}
	return errors.Join(err, s.Core.Close())
}
