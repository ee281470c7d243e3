package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/vmx"
	"github.com/govmtools/govmtools/vmxsim/vsphere"
)

// A Fleet is many VMs behind one vSphere front end, as one vCenter sees
// the VMs of many hosts: each VM has its own simulated VMX (its own core,
// its own unix sockets and vmware.log in DIR/vm-NNNN, its own ctl.sock),
// and the front end's one vcsim inventory holds all of them as NAME-NNNN,
// each with a vmxnet3 card of MAC FleetMAC(i). DIR/ctl.sock, opened once
// every VM serves, answers GET /vsphere (the front end's URL) and GET
// /vms (the VMs: directory, name, MAC). The fleet has no backdoor trap:
// a ptraced guest per VM would cost more than the guests themselves.

// FleetOptions configure a Fleet.
type FleetOptions struct {
	// Dir holds the VMs' directories and the fleet's ctl.sock.
	Dir string
	// VMs is how many VMs; at least 1.
	VMs int
	// VM is every VM's configuration: its Core (a trace is refused:
	// it would mix the VMs' messages) and GuestInfo; Dir and Backdoor
	// are ignored.
	VM Options
	// VSphere, if set, is the front end; VMName is the prefix of the VM
	// names ("" means "govmtools-vm") and NICs are ignored (each VM has
	// its FleetMAC card).
	VSphere *vsphere.Options
}

// FleetVM is one VM of a fleet, as GET /vms lists it.
type FleetVM struct {
	Dir  string `json:"dir"`
	Name string `json:"name"`
	MAC  string `json:"mac"`
}

// Fleet is an assembled fleet; NewFleet builds it, Start serves it,
// Close stops it.
type Fleet struct {
	Dir     string
	VMs     []FleetVM
	Sims    []*Sim
	VSphere *vsphere.FrontEnd // the front end's first VM; nil without one

	opts   FleetOptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ln     net.Listener
}

// FleetDir is the directory name of VM i (from 0): vm-0001, vm-0002...
func FleetDir(i int) string { return fmt.Sprintf("vm-%04d", i+1) }

// FleetMAC is the MAC of VM i's virtual NIC, in VMware's range for
// static MACs (00:50:56:00:00:00 to 00:50:56:3f:ff:ff).
func FleetMAC(i int) string {
	n := i + 1
	return fmt.Sprintf("00:50:56:%02x:%02x:%02x", n>>16&0x3f, n>>8&0xff, n&0xff)
}

// NewFleet builds every VM's core and server; nothing is served until
// Start.
func NewFleet(opts FleetOptions) (*Fleet, error) {
	switch {
	case opts.Dir == "":
		return nil, errors.New("vmxsim: the fleet needs a directory")
	case opts.VMs < 1 || opts.VMs > 0x3fffff:
		return nil, fmt.Errorf("vmxsim: a fleet of %d VMs", opts.VMs)
	case opts.VM.Core.Trace != nil:
		return nil, errors.New("vmxsim: a fleet cannot trace")
	}
	prefix := "govmtools-vm"
	if opts.VSphere != nil && opts.VSphere.VMName != "" {
		prefix = opts.VSphere.VMName
	}
	f := &Fleet{Dir: opts.Dir, opts: opts}
	for i := range opts.VMs {
		o := opts.VM
		o.Dir, o.Backdoor, o.VSphere = filepath.Join(opts.Dir, FleetDir(i)), nil, nil
		o.Core.LogPath = ""
		s, err := New(o)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.Sims = append(f.Sims, s)
		f.VMs = append(f.VMs, FleetVM{Dir: o.Dir, Name: fmt.Sprintf("%s-%04d", prefix, i+1), MAC: FleetMAC(i)})
	}
	return f, nil
}

// Start builds the front end with every VM, serves each VM's sockets,
// then DIR/ctl.sock, and returns. On error nothing is left running.
func (f *Fleet) Start(ctx context.Context) error {
	ctx, f.cancel = context.WithCancel(ctx)
	err := f.start(ctx)
	if err != nil {
		f.cancel()
		f.Wait()
	}
	return err
}

func (f *Fleet) start(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vms", func(w http.ResponseWriter, r *http.Request) { vmx.WriteJSON(w, f.VMs) })
	if o := f.opts.VSphere; o != nil {
		if err := f.startVSphere(ctx, *o, mux); err != nil {
			return err
		}
	}
	for _, s := range f.Sims {
		if err := s.Start(ctx); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(f.Dir, vmxsim.CtlSocket))
	ln, err := net.Listen("unix", filepath.Join(f.Dir, vmxsim.CtlSocket))
	if err != nil {
		return fmt.Errorf("vmxsim: %w", err)
	}
	f.ln = ln
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	f.wg.Go(func() { hs.Serve(ln) })
	f.wg.Go(func() {
		<-ctx.Done()
		hs.Close()
	})
	return nil
}

// startVSphere creates the front end with one VM per core and runs its
// mirror.
func (f *Fleet) startVSphere(ctx context.Context, o vsphere.Options, mux *http.ServeMux) error {
	o.VMName, o.NICs = f.VMs[0].Name, []string{f.VMs[0].MAC}
	vs, err := vsphere.New(ctx, f.Sims[0].Core, o)
	if err != nil {
		return err
	}
	f.VSphere = vs
	vs.HandleCtl(f.Sims[0].Server)
	// Each VM's creation waits on a few vcsim tasks (its property
	// collector wakes every 20 ms), so the VMs are made some at a time.
	var wg sync.WaitGroup
	errs := make([]error, len(f.Sims))
	sem := make(chan struct{}, createParallel)
	for i := 1; i < len(f.Sims); i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			vm := f.VMs[i]
			v, err := vs.AddVM(ctx, f.Sims[i].Core, vsphere.VMOptions{Name: vm.Name, NICs: []string{vm.MAC}})
			if err == nil {
				v.HandleCtl(f.Sims[i].Server)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	vs.HandleCtl(ctlMux{mux})
	f.wg.Go(func() { vs.RunAll(ctx) })
	return nil
}

// createParallel is how many VMs of a fleet are created at a time.
const createParallel = 8

// ctlMux is an http.ServeMux as a vmx.CtlMux.
type ctlMux struct{ *http.ServeMux }

func (m ctlMux) HandleCtl(pattern string, h http.HandlerFunc) { m.HandleFunc(pattern, h) }

// Wait waits until the fleet has stopped (its context ended or Close).
func (f *Fleet) Wait() error {
	f.wg.Wait()
	var errs []error
	for _, s := range f.Sims {
		errs = append(errs, s.Wait())
	}
	return errors.Join(errs...)
}

// Close stops every VM and the front end, waits for their goroutines and
// removes the sockets.
func (f *Fleet) Close() error {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	var errs []error
	for _, s := range f.Sims {
		errs = append(errs, s.Close())
	}
	if f.VSphere != nil {
		f.VSphere.Close()
	}
	return errors.Join(errs...)
}
