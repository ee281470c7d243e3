package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
)

// simFlags are the flags serve and run share: where the simulator lives
// and how its VMX core behaves. A feature that configures the simulated VMX
// (for example --share NAME=DIR[,ro] for HGFS) adds its flag in
// addSimFlags and applies it in setup, and both commands get it.
type simFlags struct {
	dir             string
	ping            time.Duration
	toolsTimeout    time.Duration
	exchangeTimeout time.Duration
	logLevel        string
	trace           string
	vsphere         string
	vmName          string
	vmNICs          macList
	shares          vmxsim.ShareFlag
	hgfsMaxPacket   uint
	guestinfo       kvFlag
	cpuprofile      string
}

// kvFlag is a repeatable KEY=VALUE flag.
type kvFlag [][2]string

func (f *kvFlag) String() string { return fmt.Sprint(*f) }

func (f *kvFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*f = append(*f, [2]string{k, val})
	return nil
}

func addSimFlags(fs *flag.FlagSet, defaultLevel string) *simFlags {
	f := &simFlags{}
	fs.StringVar(&f.dir, "dir", os.Getenv("VMXSIM_DIR"), "simulator directory (sockets and vmware.log)")
	fs.DurationVar(&f.ping, "ping-interval", time.Second, "TCLO ping cadence")
	fs.DurationVar(&f.toolsTimeout, "tools-timeout", 0, "how long tools count as running after their channel closes (default 10 ping intervals)")
	fs.DurationVar(&f.exchangeTimeout, "exchange-timeout", 10*time.Second, "wait for the guest's answer to one TCLO command")
	fs.StringVar(&f.logLevel, "log-level", defaultLevel, "simulator log level: debug, info, warn, error")
	fs.StringVar(&f.trace, "trace", "", "append every RPCI and TCLO message as it crossed to this file, one JSON object a line")
	fs.StringVar(&f.vsphere, "vsphere", "", "also serve a vSphere front end (govmomi's vcsim) on HOST:PORT; port 0 picks a free port")
	fs.StringVar(&f.vmName, "vm-name", "govmtools-vm", "the vSphere front end's VM name")
	fs.Var(&f.vmNICs, "vm-nic", "give the vSphere front end's VM a virtual NIC with this MAC (repeatable); guest.net ties the guest's NIC of that MAC to it")
	fs.Var(&f.shares, "share", vmxsim.ShareFlagUsage)
	fs.UintVar(&f.hgfsMaxPacket, "hgfs-max-packet", 0, "HGFS packet size the host offers (default 522240)")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the simulator to this file (go tool pprof)")
	fs.Var(&f.guestinfo, "guestinfo", "guestinfo variable KEY=VALUE the VM is configured with, as a .vmx line guestinfo.KEY = \"VALUE\" (repeatable)")
	return f
}

// sim is a configured simulator: the VMX core and its server on dir.
type sim struct {
	core    *vmxsim.Core
	srv     *vmxsim.Server
	logger  *slog.Logger
	closers []func() error
}

// setup builds the core and server that f describes. f.dir must be set.
func (f *simFlags) setup(stderr io.Writer) (*sim, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usageError(err.Error())
	}
	s := &sim{logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	opts := vmxsim.Options{
		LogPath:         filepath.Join(f.dir, vmxsim.LogFile),
		PingInterval:    f.ping,
		ToolsTimeout:    f.toolsTimeout,
		ExchangeTimeout: f.exchangeTimeout,
		Logger:          s.logger,
		Shares:          f.shares,
		HGFSMaxPacket:   uint32(f.hgfsMaxPacket),
	}
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		s.closers = append(s.closers, func() error { pprof.StopCPUProfile(); return pf.Close() })
	}
	if f.trace != "" {
		tf, err := os.OpenFile(f.trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--trace: %w", err)
		}
		s.closers = append(s.closers, tf.Close)
		opts.Trace = tf
	}
	core, err := vmxsim.New(opts)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.closers = append([]func() error{core.Close}, s.closers...)
	s.core = core
	for _, kv := range f.guestinfo {
		core.SetGuestInfoVar(kv[0], kv[1])
	}
	s.srv = vmxsim.NewServer(core, f.dir)
	return s, nil
}

// startVSphere starts the vSphere front end when --vsphere is set; it runs
// until ctx ends, tracked by wg.
func (s *sim) startVSphere(ctx context.Context, f *simFlags, wg *sync.WaitGroup) error {
	if f.vsphere == "" {
		return nil
	}
	vs, err := vmxsim.NewVSphere(ctx, s.core, vmxsim.VSphereOptions{Addr: f.vsphere, VMName: f.vmName, NICs: f.vmNICs, Logger: s.logger})
	if err != nil {
		return err
	}
	s.closers = append([]func() error{func() error { vs.Close(); return nil }}, s.closers...)
	s.srv.AttachVSphere(vs)
	wg.Go(func() { vs.Run(ctx) })
	s.logger.Info("vSphere front end", "url", vs.URL().String(), "vm", f.vmName)
	return nil
}

// Close closes the vSphere front end, vmware.log and the trace.
func (s *sim) Close() {
	for _, c := range s.closers {
		c()
	}
}

// macList is a repeatable flag of MAC addresses.
type macList []string

func (m *macList) String() string { return strings.Join(*m, ",") }

func (m *macList) Set(v string) error {
	hw, err := net.ParseMAC(v)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("%q is not an Ethernet MAC address", v)
	}
	*m = append(*m, hw.String())
	return nil
}
