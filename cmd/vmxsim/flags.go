package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
	"github.com/govmtools/govmtools/vmxsim/sim"
	"github.com/govmtools/govmtools/vmxsim/vmhost"
	"github.com/govmtools/govmtools/vmxsim/vsphere"
)

// simFlags are the flags serve and run share: where the simulator lives
// and how its VMX core behaves. A feature that configures the simulated VMX
// (for example --share NAME=DIR[,ro] for HGFS) adds its flag in
// addSimFlags and applies it in options, and both commands get it.
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
	shares          hgfsd.ShareFlag
	hgfsMaxPacket   uint
	guestinfo       kvFlag
	cpuprofile      string
	rpciVSock       bool
	secureRPC       pathList
	diskWiper       bool
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
	fs.Var(&f.shares, "share", hgfsd.ShareFlagUsage)
	fs.UintVar(&f.hgfsMaxPacket, "hgfs-max-packet", 0, "HGFS packet size the host offers (default 522240)")
	fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the simulator to this file (go tool pprof)")
	fs.BoolVar(&f.rpciVSock, "rpci-vsock", true, "accept RPCI over vsock; false resets those connections, as guest_rpc.rpci.usevsocket = \"FALSE\" (guests fall back to the backdoor)")
	fs.Var(&f.secureRPC, "secure-rpc", "an RPCI command only privileged callers (vsock from a port below 1024) may send, as guest_rpc.rpci.auth.cmd.CMD = \"TRUE\"; others get \"Permission denied\" (repeatable)")
	fs.BoolVar(&f.diskWiper, "disk-wiper", false, "let the guest wipe and shrink its disks (disk.wiper.enable answers 1); by default it answers 0, as vSphere does for most disks")
	fs.Var(&f.guestinfo, "guestinfo", "guestinfo variable KEY=VALUE the VM is configured with, as a .vmx line guestinfo.KEY = \"VALUE\" (repeatable)")
	return f
}

// logger is the simulator's stderr logger at --log-level.
func (f *simFlags) logger(stderr io.Writer, cmd string) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, usageError{cmd: cmd, msg: fmt.Sprintf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}

// options returns the simulator f describes, and a function that closes
// the files it opened (the trace, the CPU profile) once it has stopped.
// f.dir must be set.
func (f *simFlags) options(logger *slog.Logger) (sim.Options, func() error, error) {
	opts := sim.Options{
		Dir: f.dir,
		Core: vmxsim.Options{
			PingInterval:    f.ping,
			ToolsTimeout:    f.toolsTimeout,
			ExchangeTimeout: f.exchangeTimeout,
			Logger:          logger,
			Shares:          f.shares,
			HGFSMaxPacket:   uint32(f.hgfsMaxPacket),
			NoRPCIVSock:     !f.rpciVSock,
			SecureRPC:       f.secureRPC,
			Host:            vmhost.Options{Wiper: f.diskWiper},
		},
		GuestInfo: f.guestinfo,
	}
	if f.vsphere != "" {
		opts.VSphere = &vsphere.Options{Addr: f.vsphere, VMName: f.vmName, NICs: f.vmNICs, Logger: logger}
	}
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	if f.cpuprofile != "" {
		pf, err := os.Create(f.cpuprofile)
		if err == nil {
			if err = pprof.StartCPUProfile(pf); err != nil {
				pf.Close()
			}
		}
		if err != nil {
			return opts, nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		closers = append(closers, func() error { pprof.StopCPUProfile(); return pf.Close() })
	}
	if f.trace != "" {
		tf, err := os.OpenFile(f.trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			closeAll()
			return opts, nil, fmt.Errorf("--trace: %w", err)
		}
		closers = append(closers, tf.Close)
		opts.Core.Trace = tf
	}
	return opts, closeAll, nil
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

// pathList is a repeatable flag of paths.
type pathList []string

func (l *pathList) String() string     { return strings.Join(*l, ",") }
func (l *pathList) Set(v string) error { *l = append(*l, v); return nil }

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

// startSim builds and starts the simulator f describes; stop stops it and
// closes its files.
func (f *simFlags) startSim(ctx context.Context, logger *slog.Logger, configure func(*sim.Options)) (s *sim.Sim, stop func() error, err error) {
	opts, closeFiles, err := f.options(logger)
	if err != nil {
		return nil, nil, err
	}
	if configure != nil {
		configure(&opts)
	}
	s, err = sim.New(opts)
	if err == nil {
		if err = s.Start(ctx); err != nil {
			s.Close()
		}
	}
	if err != nil {
		closeFiles()
		return nil, nil, err
	}
	if s.VSphere != nil {
		logger.Info("vSphere front end", "url", s.VSphere.URL().String(), "vm", f.vmName)
	}
	return s, func() error { return errors.Join(s.Close(), closeFiles()) }, nil
}
