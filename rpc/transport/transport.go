// Package transport chooses how a govmtools binary reaches the VMX. It is
// the only package that knows every backend:
//
//	auto      vsock first, backdoor fallback, as open-vm-tools does; refuses
//	          to touch either unless backdoor.Detect says this is a VMware
//	          VM. After an RPCI vsock failure the backdoor is used and vsock
//	          retried once the back-off has passed (2 s, doubling to 5 min);
//	          TCLO tries vsock, then the backdoor, on every open
//	vsock     AF_VSOCK to CID 0: TCLO port 975, RPCI port 976 from a
//	          privileged source port
//	backdoor  the I/O-port (amd64) or MRS-trap (arm64) message channel,
//	          also only after backdoor.Detect
//	unix:DIR  vmxsim's sockets DIR/tclo.sock and DIR/rpci.sock, which speak
//	          the vsock DataMap framing
//
// Every binary takes --rpc MODE; when the flag is empty the GOVMTOOLS_RPC
// environment variable is used, and then auto. Only mains import this
// package.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/rpc/sockchan"
	"github.com/govmtools/govmtools/rpc/vsock"
)

// EnvRPC names the environment variable read when --rpc is not given.
const EnvRPC = "GOVMTOOLS_RPC"

// EnvSimulated is set to 1 by vmxsim for every process it starts. Under it
// the vsock backend is never used: vmxsim serves the backdoor and unix
// sockets only, and an AF_VSOCK socket on a development machine reaches
// the machine's own host.
const EnvSimulated = "GOVMTOOLS_SIMULATED"

// EnvVSockTrap is set to 1 by `vmxsim run` (without --no-vsock) for the
// programs it traces, whose seccomp filter turns AF_VSOCK sockets into
// connections to the simulator. Under GOVMTOOLS_SIMULATED=1 vsock is used
// only when this is set and the process really runs under a seccomp filter
// (/proc/self/status "Seccomp: 2"), so that neither variable alone, left
// in an environment, lets a real AF_VSOCK socket reach the machine's host.
const EnvVSockTrap = "GOVMTOOLS_VSOCK_TRAP"

// Kind is a transport backend.
type Kind string

// Backends.
const (
	Auto     Kind = "auto"
	VSock    Kind = "vsock"
	Backdoor Kind = "backdoor"
	Unix     Kind = "unix"
)

// Mode is a parsed --rpc value.
type Mode struct {
	Kind Kind
	Dir  string // for Unix
}

func (m Mode) String() string {
	if m.Kind == Unix {
		return "unix:" + m.Dir
	}
	return string(m.Kind)
}

// Parse parses auto, vsock, backdoor or unix:DIR.
func Parse(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return Mode{Kind: Auto}, nil
	case "vsock":
		return Mode{Kind: VSock}, nil
	case "backdoor":
		return Mode{Kind: Backdoor}, nil
	}
	if dir, ok := strings.CutPrefix(s, "unix:"); ok {
		if dir == "" {
			return Mode{}, errors.New("transport: unix: needs a directory, as in unix:/run/vmxsim")
		}
		return Mode{Kind: Unix, Dir: filepath.Clean(dir)}, nil
	}
	return Mode{}, fmt.Errorf("transport: unknown rpc mode %q (want auto, vsock, backdoor or unix:DIR)", s)
}

// Select parses the --rpc flag value, falling back to the value of
// GOVMTOOLS_RPC (pass os.Getenv(EnvRPC)) and then to auto.
func Select(flagValue, envValue string) (Mode, error) {
	if flagValue != "" {
		return Parse(flagValue)
	}
	if envValue != "" {
		m, err := Parse(envValue)
		if err != nil {
			return Mode{}, fmt.Errorf("%s: %w", EnvRPC, err)
		}
		return m, nil
	}
	return Mode{Kind: Auto}, nil
}

// Config configures a Transport.
type Config struct {
	Mode Mode
	// Simulated is true when running under vmxsim (GOVMTOOLS_SIMULATED=1):
	// vsock is tried only under the vsock trap (VSockTrapped).
	Simulated bool
	// VSockTrapped says whether this process runs under vmxsim's vsock
	// trap; nil means TrappedVSock.
	VSockTrapped func() bool
	// Logger receives fallback decisions; nil discards them.
	Logger *slog.Logger

	// Tests replace the platform below; nil means the real one.

	// Detect says whether this is a VMware VM (backdoor.Detect).
	Detect func() error
	// Hypercall executes backdoor calls (backdoor.Native).
	Hypercall backdoor.Hypercall
	// VSockSocket creates vsock sockets (a real AF_VSOCK socket).
	VSockSocket func() (vsock.Socket, error)
	// Now is the clock of the vsock back-off (time.Now).
	Now func() time.Time
}

// RPCI vsock back-off after a failure, as open-vm-tools' RpcChannel: the
// backdoor is used until it has passed.
const (
	VSockRetryFirst = 2 * time.Second
	VSockRetryMax   = 5 * time.Minute
)

// Transport opens TCLO and RPCI channels with the configured backend. It is
// safe for concurrent use.
type Transport struct {
	cfg   Config
	vsock vsock.Dialer
	// noVSock: simulated without the vsock trap, vsock is never used.
	noVSock bool

	mu        sync.Mutex
	detected  bool
	detectErr error
	backoff   time.Duration // 0 until an RPCI vsock failure
	retryAt   time.Time
}

// New returns a transport for cfg. It opens nothing until a dial.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Detect == nil {
		cfg.Detect = backdoor.Detect
	}
	if cfg.Hypercall == nil {
		cfg.Hypercall = backdoor.Native{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.VSockTrapped == nil {
		cfg.VSockTrapped = TrappedVSock
	}
	noVSock := cfg.Simulated && !cfg.VSockTrapped()
	return &Transport{cfg: cfg, noVSock: noVSock, vsock: vsock.Dialer{Logger: cfg.Logger, Socket: cfg.VSockSocket}}
}

// Mode returns the configured mode.
func (t *Transport) Mode() Mode { return t.cfg.Mode }

// DialTCLO opens a TCLO channel.
func (t *Transport) DialTCLO(ctx context.Context) (rpc.Channel, error) {
	switch t.cfg.Mode.Kind {
	case Unix:
		return t.dialUnix(ctx, "tclo.sock", false)
	case VSock:
		return t.dialVSockTCLO(ctx)
	case Backdoor:
		return t.dialBackdoor(backdoor.ProtoTCLO)
	}
	if err := t.checkVMware(); err != nil {
		return nil, err
	}
	ch, err := t.dialVSockTCLO(ctx)
	if err == nil {
		return ch, nil
	}
	t.cfg.Logger.Debug("vsock tclo unavailable; trying the backdoor", "err", err)
	return t.dialBackdoor(backdoor.ProtoTCLO)
}

// DialRPCI opens a persistent RPCI channel.
func (t *Transport) DialRPCI(ctx context.Context) (rpc.Channel, error) {
	return t.dialRPCI(ctx, false)
}

// DialRPCIResumable opens a persistent RPCI channel that a later process
// can resume (see rpc.Resumable) whenever the mode allows one: in auto mode
// the backdoor comes first and vsock only if the backdoor cannot be
// opened, as open-vm-tools' logger keeps a dedicated backdoor channel; the
// other modes are as DialRPCI (unix:DIR and vsock channels cannot be
// resumed).
func (t *Transport) DialRPCIResumable(ctx context.Context) (rpc.Channel, error) {
	if t.cfg.Mode.Kind != Auto {
		return t.dialRPCI(ctx, false)
	}
	if err := t.checkVMware(); err != nil {
		return nil, err
	}
	ch, err := t.dialBackdoor(backdoor.ProtoRPCI)
	if err == nil {
		return ch, nil
	}
	t.cfg.Logger.Debug("backdoor rpci unavailable; trying vsock", "err", err)
	return t.dialRPCI(ctx, false)
}

// ResumeRPCI returns the RPCI channel named by token, the Token of a
// resumable channel this or an earlier process opened. Only backdoor
// channels have tokens, and only the auto and backdoor modes (after the
// VMware check) touch the backdoor to resume one.
func (t *Transport) ResumeRPCI(token string) (rpc.Channel, error) {
	switch t.cfg.Mode.Kind {
	case Auto, Backdoor:
	default:
		return nil, fmt.Errorf("transport: --rpc %s cannot resume a backdoor channel", t.cfg.Mode)
	}
	if err := t.checkVMware(); err != nil {
		return nil, err
	}
	ch, err := backdoor.Resume(t.cfg.Hypercall, token)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return ch, nil
}

// DialRPCIOneShot opens an RPCI channel for a single request: over vsock
// and unix sockets the request carries FAST_CLOSE, so the VMX closes the
// connection after replying.
func (t *Transport) DialRPCIOneShot(ctx context.Context) (rpc.Channel, error) {
	return t.dialRPCI(ctx, true)
}

func (t *Transport) dialRPCI(ctx context.Context, oneShot bool) (rpc.Channel, error) {
	switch t.cfg.Mode.Kind {
	case Unix:
		return t.dialUnix(ctx, "rpci.sock", oneShot)
	case VSock:
		return t.dialVSockRPCI(ctx, oneShot)
	case Backdoor:
		return t.dialBackdoor(backdoor.ProtoRPCI)
	}
	if err := t.checkVMware(); err != nil {
		return nil, err
	}
	if t.tryVSockRPCI() {
		ch, err := t.dialVSockRPCI(ctx, oneShot)
		t.vsockRPCIResult(err)
		if err == nil {
			return ch, nil
		}
		t.cfg.Logger.Debug("vsock rpci unavailable; using the backdoor", "err", err)
	}
	return t.dialBackdoor(backdoor.ProtoRPCI)
}

// tryVSockRPCI reports whether the RPCI back-off allows a vsock attempt.
func (t *Transport) tryVSockRPCI() bool {
	if t.noVSock {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.backoff == 0 || !t.cfg.Now().Before(t.retryAt)
}

// vsockRPCIResult updates the back-off after a vsock attempt: a success
// clears it, a failure starts it at 2 s or doubles it, up to 5 minutes.
func (t *Transport) vsockRPCIResult(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.backoff = 0
		return
	}
	t.backoff = min(max(2*t.backoff, VSockRetryFirst), VSockRetryMax)
	t.retryAt = t.cfg.Now().Add(t.backoff)
}

// checkVMware guards auto and backdoor: on anything but a VMware VM neither
// vsock (which would reach the machine's own host) nor the backdoor (which
// faults) may be touched. The answer is kept for the transport's life.
func (t *Transport) checkVMware() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.detected {
		t.detectErr = t.cfg.Detect()
		t.detected = true
	}
	if t.detectErr != nil {
		return fmt.Errorf("transport: %w (use --rpc unix:DIR to reach vmxsim, or run under vmxsim run)", t.detectErr)
	}
	return nil
}

// HostClock returns the host clock over the backdoor (GETTIMEFULL_WITH_LAG
// and its fallbacks) for time synchronization, in the modes that may reach
// the backdoor: auto (even when the channels use vsock: the time commands
// exist only on the backdoor) and backdoor. Each use first requires the
// cached VMware detection to have succeeded, so that no backdoor
// instruction runs elsewhere. vsock and unix:DIR have no host clock: ok is
// false.
func (t *Transport) HostClock() (c *backdoor.HostClock, ok bool) {
	switch t.cfg.Mode.Kind {
	case Auto, Backdoor:
		return &backdoor.HostClock{H: t.cfg.Hypercall, Ready: t.checkVMware}, true
	}
	return nil, false
}

// LowBandwidth returns the backdoor's low-bandwidth port for the commands
// that exist only there (GETMHZ, GETGUIOPTIONS, the device list; the time
// commands), in the modes that may reach the backdoor: auto and backdoor.
// call first requires the cached VMware detection to have succeeded, so
// that no backdoor instruction runs elsewhere. vsock and unix:DIR have no
// backdoor: ok is false.
func (t *Transport) LowBandwidth() (call func(r *backdoor.Regs) error, ok bool) {
	switch t.cfg.Mode.Kind {
	case Auto, Backdoor:
	default:
		return nil, false
	}
	return func(r *backdoor.Regs) error {
		if err := t.checkVMware(); err != nil {
			return err
		}
		t.cfg.Hypercall.LB(r)
		return nil
	}, true
}

// ErrNoBackdoor is returned for a backdoor call in a mode without one
// (vsock, unix:DIR).
var ErrNoBackdoor = errors.New("transport: this --rpc mode has no backdoor")

// CheckVMware reports whether the mode may reach a VMX: in auto and
// backdoor, whether this is a VMware VM (backdoor.Detect, cached); vsock
// and unix:DIR are taken as given.
func (t *Transport) CheckVMware() error {
	switch t.cfg.Mode.Kind {
	case Auto, Backdoor:
		return t.checkVMware()
	}
	return nil
}

func (t *Transport) dialBackdoor(proto uint32) (rpc.Channel, error) {
	if err := t.checkVMware(); err != nil {
		return nil, err
	}
	ch, err := backdoor.Open(t.cfg.Hypercall, proto)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return ch, nil
}

var errSimulated = errors.New("transport: vsock is disabled under vmxsim (" + EnvSimulated + "=1) without its vsock trap")

func (t *Transport) dialVSockTCLO(ctx context.Context) (rpc.Channel, error) {
	if t.noVSock {
		return nil, errSimulated
	}
	c, err := t.vsock.DialTCLO(ctx)
	if err != nil {
		return nil, err
	}
	return sockchan.New(t.quiet(c)), nil
}

// quiet is sockchan.Quiet for a TCLO connection, whose idle pings should
// wake the guest once each; c itself where that cannot be had.
func (t *Transport) quiet(c net.Conn) net.Conn {
	q, err := sockchan.Quiet(c)
	if err != nil {
		t.cfg.Logger.Debug("tclo socket stays in the runtime poller", "err", err)
		return c
	}
	return q
}

func (t *Transport) dialVSockRPCI(ctx context.Context, oneShot bool) (rpc.Channel, error) {
	if t.noVSock {
		return nil, errSimulated
	}
	c, privileged, err := t.vsock.DialRPCI(ctx)
	if err != nil {
		return nil, err
	}
	if !privileged {
		t.cfg.Logger.Debug("rpci over vsock is unprivileged (not root)")
	}
	ch := sockchan.New(c)
	ch.FastClose = oneShot
	ch.WaitInKernel = true // RPCI: the reply follows the request
	return ch, nil
}

func (t *Transport) dialUnix(ctx context.Context, name string, oneShot bool) (rpc.Channel, error) {
	path := filepath.Join(t.cfg.Mode.Dir, name)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w (is vmxsim serve --dir %s running?)", path, err, t.cfg.Mode.Dir)
	}
	if name == "tclo.sock" {
		c = t.quiet(c)
	}
	ch := sockchan.New(c)
	ch.FastClose = oneShot
	ch.WaitInKernel = name == "rpci.sock"
	return ch, nil
}

// TrappedVSock reports whether this process runs under vmxsim's vsock
// trap: GOVMTOOLS_VSOCK_TRAP=1 and a seccomp filter in force.
func TrappedVSock() bool {
	if os.Getenv(EnvVSockTrap) != "1" {
		return false
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2"
		}
	}
	return false
}
