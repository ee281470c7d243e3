// Package vmtoolsd is the main tools service ("toolbox"), the part of the
// guest vSphere talks to: it answers the VMX's TCLO commands (reset, ping,
// Set_Option, Capabilities_Register, and what its plugins register) over
// the rpc TCLO loop, and sends the RPCIs that make vSphere show tools
// running with a version: the capability messages, the version, the
// guestinfo.vmtools.* keys, and the post-reset RPCIs.
//
// Features are plugins, as in open-vm-tools: each Plugin registers what
// it does (commands, Set_Option handling, capabilities, reset work, a
// long-running part) on a Registry. Power operations (vmtoolsd/power),
// time sync (vmtoolsd/timesync) and guest info (vmtoolsd/infosync) are
// plugins; vmtoolsd/daemon assembles them into the daemon.
//
// Everything the service sends is shaped as vmtoolsd shapes it, byte for
// byte where the VMX cares: no-value capabilities end in a space and carry
// no NUL, text RPCIs carry their C terminator (docs/architecture.md
// section 5).
package vmtoolsd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/rpc"
)

// App is the TCLO application name of the main service.
const App = "toolbox"

// Feature is one new-style capability: an index of capabilities.h's
// GuestCapabilities table and its value. All of them travel in a single
// "tools.capability.features i=v i=v" RPCI.
type Feature struct{ Index, Value int }

// CapVMBackupNVMe is CAP_VMBACKUP_NVME, the one new-style capability
// Debian's vmtoolsd registers on a server (vmbackup's, 0 unless
// tools.conf enables NVMe quiescing; vix's 37 is absent there too).
const CapVMBackupNVMe = 36

// Sender sends one RPCI request; *rpc.Client is one.
type Sender interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
}

// PrimaryIPer chooses the address reported for Set_Option broadcastIP 1
// (guestinfo.ip).
type PrimaryIPer interface {
	PrimaryIP(ctx context.Context) (netip.Addr, error)
}

// Config configures a Service.
type Config struct {
	// DialTCLO opens the TCLO channel.
	DialTCLO rpc.Dialer
	// RPCI sends the service's RPCIs.
	RPCI Sender
	// Plugins are the features; see the package documentation.
	Plugins []Plugin
	// PrimaryIP answers broadcastIP; nil means InterfaceIP{}.
	PrimaryIP PrimaryIPer
	// Version is what the service claims; zero means DefaultVersion.
	Version Version
	// HideVersion reports the unmanaged version (tools.conf [vmtools]
	// hide-tools-version); it is read at each Capabilities_Register.
	HideVersion func() bool
	// ConfDir is reported as tools.capability.guest_conf_directory; ""
	// means /etc/vmware-tools.
	ConfDir string
	// Uptime returns the time since boot in hundredths of a second; it is
	// sent as "SetGuestInfo  7 <uptime>" on each Capabilities_Register,
	// as vmtoolsd's guestInfo plugin answers the capability signal. nil
	// sends nothing.
	Uptime func() (int64, error)
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger

	// OnReady is called once, after the first reset has been answered
	// and the post-reset RPCIs sent (systemd readiness).
	OnReady func()
	// OnActive is called after each exchange with the host (the TCLO
	// loop's liveness, for the systemd watchdog).
	OnActive func()
	// OnStatus receives one-line status changes (systemd STATUS=).
	OnStatus func(string)
	// RestartDelay and MaxRestartDelay bound the channel reopen back-off
	// (0 means rpc.Loop's defaults).
	RestartDelay, MaxRestartDelay time.Duration
	// PollSleep is rpc.Loop's PollSleep: how the backdoor channel sleeps
	// between idle polls (nil: Go timers).
	PollSleep func(ctx context.Context, d time.Duration) error
	// HeartbeatAlarm is rpc.Loop's HeartbeatAlarm: the timer of the
	// PINGs on vsock and unix:DIR (nil: a Go timer).
	HeartbeatAlarm func() (rpc.Alarm, error)
}

// Service is the running tools service.
type Service struct {
	cfg Config
	mux *rpc.Mux
	reg Registry
	lg  *slog.Logger

	resets      atomic.Int64
	readyOnce   sync.Once
	versionSent atomic.Bool // the one-per-process "log toolbox: Version"
	infoMu      sync.Mutex  // serializes sendVersionInfo (start-up and reset race)
	infoSent    atomic.Bool // the guestinfo.vmtools.* keys
	connected   atomic.Bool
}

// New returns a service for cfg.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PrimaryIP == nil {
		cfg.PrimaryIP = InterfaceIP{}
	}
	if cfg.Version == (Version{}) {
		cfg.Version = DefaultVersion()
	}
	if cfg.ConfDir == "" {
		cfg.ConfDir = "/etc/vmware-tools"
	}
	s := &Service{cfg: cfg, lg: cfg.Logger, mux: &rpc.Mux{Logger: cfg.Logger}}
	s.mux.HandleFunc("Set_Option", s.setOption)
	s.mux.HandleFunc("Capabilities_Register", s.capabilitiesRegister)
	s.reg.mux = s.mux
	for _, p := range cfg.Plugins {
		p.Plug(&s.reg)
	}
	return s
}

// Mux returns the command table (for tests and for plugins added late).
func (s *Service) Mux() *rpc.Mux { return s.mux }

// Run serves until ctx ends, reopening the TCLO channel with back-off
// after failures, and returns after every goroutine it started (plugins
// included) has ended.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.DialTCLO == nil || s.cfg.RPCI == nil {
		return errors.New("vmtoolsd: service needs DialTCLO and RPCI")
	}
	s.status("Connecting to the VMX")
	var wg sync.WaitGroup
	for _, r := range s.reg.runners {
		wg.Go(func() {
			if err := r.run(ctx); err != nil && ctx.Err() == nil {
				s.lg.Error("plugin stopped", "plugin", r.name, "err", err)
			}
		})
	}
	wg.Go(func() { s.sendVersionInfo(ctx) })
	loop := &rpc.Loop{
		Dial:            s.dial,
		Mux:             s.mux,
		App:             App,
		OnReset:         s.onReset,
		OnActive:        s.cfg.OnActive,
		Logger:          s.lg,
		RestartDelay:    s.cfg.RestartDelay,
		MaxRestartDelay: s.cfg.MaxRestartDelay,
		PollSleep:       s.cfg.PollSleep,
		HeartbeatAlarm:  s.cfg.HeartbeatAlarm,
		// The VMX pings every second, as often as the heartbeat is due:
		// with 100 ms of slack the PING rides along with every ping's
		// reply instead of racing it (open-vm-tools' glib timer is late
		// by its own dispatch latency each second, too).
		HeartbeatSlack: rpc.DefaultHeartbeat / 10,
	}
	err := loop.Run(ctx)
	wg.Wait()
	s.unregister()
	return err
}

// dial opens the TCLO channel and keeps the status line honest.
func (s *Service) dial(ctx context.Context) (rpc.Channel, error) {
	if s.connected.Swap(false) {
		s.status("TCLO channel lost; reconnecting")
	}
	ch, err := s.cfg.DialTCLO(ctx)
	if err != nil {
		s.status("Cannot reach the VMX; retrying: " + err.Error())
		return nil, err
	}
	s.connected.Store(true)
	return ch, nil
}

// onReset runs after each reset reply: the post-reset RPCIs, then the
// plugins' reset work. Calls never overlap (rpc.Loop coalesces a storm).
func (s *Service) onReset(ctx context.Context) {
	n := s.resets.Add(1)
	if _, err := s.call(ctx, "vmx.capability.unified_loop "+App+"\x00"); err != nil {
		// An old VMX: some features (Set_Option) may not work.
		s.lg.Warn("vmx.capability.unified_loop refused", "err", err)
	}
	if !s.versionSent.Load() {
		if _, err := s.call(ctx, "log "+App+": Version: "+s.cfg.Version.Description()+"\x00"); err == nil {
			s.versionSent.Store(true)
		}
	}
	if !s.infoSent.Load() {
		s.sendVersionInfo(ctx)
	}
	for _, reset := range s.reg.resets {
		reset(ctx)
	}
	s.lg.Debug("channel reset", "resets", n)
	s.status(fmt.Sprintf("Tools running (version %s); %d resets answered", s.cfg.Version, n))
	s.readyOnce.Do(func() {
		s.lg.Info("tools service ready", "version", s.cfg.Version.String(), "claims", s.cfg.Version.Uint())
		if s.cfg.OnReady != nil {
			s.cfg.OnReady()
		}
	})
}

// sendVersionInfo sends the startup guestinfo.vmtools.* keys, once per
// process (as ToolsCoreReportVersionData). A failure is retried at the
// next reset.
func (s *Service) sendVersionInfo(ctx context.Context) {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	if s.infoSent.Load() {
		return
	}
	v := s.cfg.Version
	for _, kv := range [][2]string{
		{"description", v.Description()},
		{"versionString", v.String()},
		{"versionNumber", fmt.Sprint(v.Uint())},
		{"buildNumber", fmt.Sprint(v.Build)},
	} {
		if _, err := s.call(ctx, "info-set guestinfo.vmtools."+kv[0]+" "+kv[1]+"\x00"); err != nil {
			s.lg.Debug("guestinfo.vmtools not sent yet", "key", kv[0], "err", err)
			return
		}
	}
	s.infoSent.Store(true)
}

// setOption parses "Set_Option <name> <value>" as vmtoolsd does: the name
// is the first token, exactly one separator is skipped, the rest (spaces
// included) is the value; an empty name or value is refused. Every other
// option is answered "OK ", understood or not.
func (s *Service) setOption(ctx context.Context, args []byte) ([]byte, error) {
	a := strings.TrimLeft(string(bytes.TrimRight(args, "\x00")), " ")
	name, value, _ := strings.Cut(a, " ")
	if name == "" || value == "" {
		return nil, rpc.Failure("Unknown or invalid option")
	}
	handled := false
	if name == "broadcastIP" {
		handled = true
		if value == "1" {
			s.broadcastIP(ctx)
		}
	}
	for _, set := range s.reg.options {
		if set(ctx, name, value) {
			handled = true
		}
	}
	s.lg.Debug("option set", "name", name, "value", value, "handled", handled)
	return nil, nil
}

func (s *Service) broadcastIP(ctx context.Context) {
	ip, err := s.cfg.PrimaryIP.PrimaryIP(ctx)
	if err != nil {
		s.lg.Info("broadcastIP: no primary address", "err", err)
		return
	}
	if _, err := s.call(ctx, "info-set guestinfo.ip "+ip.String()+"\x00"); err != nil {
		s.lg.Warn("broadcastIP: info-set guestinfo.ip failed", "err", err)
	}
}

// capabilitiesRegister sends the capabilities in the order Debian's
// vmtoolsd 12.2.0 sends them (testdata/peer/vmtoolsd-12.2.0-startup.jsonl;
// vmtoolsd walks its plugins in load order, the common hgfsServer first,
// then guestInfo, then powerOps, and merges the new-style capabilities
// into one message at the end): the HGFS server capability, the uptime,
// the plugins' old-style capabilities (power operations), the new-style
// features, the configuration directory, then the version. The reply is
// "OK ".
func (s *Service) capabilitiesRegister(ctx context.Context, args []byte) ([]byte, error) {
	for _, req := range s.capabilities(true) {
		if _, err := s.callBytes(ctx, req); err != nil {
			s.lg.Warn("capability refused", "rpci", printable(req), "err", err)
		}
	}
	if _, err := s.call(ctx, "tools.capability.guest_conf_directory "+s.cfg.ConfDir+"\x00"); err != nil {
		s.lg.Warn("guest_conf_directory refused", "err", err)
	}
	s.sendVersion(ctx)
	return nil, nil
}

// capabilities lists the capability RPCIs; set=false gives the messages
// that withdraw them at shutdown (old-style ones re-sent with 0, the
// features with every value 0; no-value ones are not withdrawn, and the
// uptime is not sent).
func (s *Service) capabilities(set bool) [][]byte {
	// Sent as vmtoolsd's hgfsServer plugin does: without it vSphere shows
	// tools "running (not installed)" (open-vm-tools#131).
	caps := [][]byte{fmt.Appendf(nil, "tools.capability.hgfs_server %s %d\x00", App, b2i(set))}
	if set {
		if up, ok := s.uptime(); ok {
			caps = append(caps, infoproto.TextMessage(infoproto.InfoUptime, strconv.FormatInt(up, 10)))
		}
		for _, c := range s.reg.caps {
			caps = append(caps, c()...)
		}
	}
	return append(caps, s.featuresMessage(set))
}

// uptime reads Config.Uptime.
func (s *Service) uptime() (int64, bool) {
	if s.cfg.Uptime == nil {
		return 0, false
	}
	up, err := s.cfg.Uptime()
	if err != nil {
		s.lg.Debug("no uptime for Capabilities_Register", "err", err)
		return 0, false
	}
	return up, true
}

// featuresMessage is "tools.capability.features i=v ..." with a NUL: the
// plugins' features in index order, CAP_VMBACKUP_NVME=0 unless a plugin
// sets it; with set=false every value is 0.
func (s *Service) featuresMessage(set bool) []byte {
	vals := map[int]int{CapVMBackupNVMe: 0}
	for _, f := range s.reg.features {
		for _, ft := range f() {
			vals[ft.Index] = ft.Value
		}
	}
	b := []byte("tools.capability.features")
	for _, i := range slices.Sorted(maps.Keys(vals)) {
		v := vals[i]
		if !set {
			v = 0
		}
		b = fmt.Appendf(b, " %d=%d", i, v)
	}
	return append(b, 0)
}

// sendVersion reports the version: tools.set.versiontype first, and on
// refusal (an old host) tools.set.version, unmanaged unless the version
// is hidden anyway, as vmtoolsd does for open-vm-tools.
func (s *Service) sendVersion(ctx context.Context) {
	v := s.cfg.Version.Uint()
	if s.cfg.HideVersion != nil && s.cfg.HideVersion() {
		v = VersionUnmanaged
	}
	if _, err := s.call(ctx, fmt.Sprintf("tools.set.versiontype %d %d\x00", v, TypeOpenVMTools)); err == nil {
		return
	} else {
		s.lg.Info("tools.set.versiontype refused; falling back to tools.set.version", "err", err)
	}
	if _, err := s.call(ctx, fmt.Sprintf("tools.set.version %d\x00", VersionUnmanaged)); err != nil {
		s.lg.Warn("cannot report the tools version", "err", err)
	}
}

// unregister withdraws the old-style capabilities at an orderly stop.
func (s *Service) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, req := range s.capabilities(false) {
		s.callBytes(ctx, req)
	}
}

func (s *Service) call(ctx context.Context, req string) ([]byte, error) {
	return s.callBytes(ctx, []byte(req))
}

func (s *Service) callBytes(ctx context.Context, req []byte) ([]byte, error) {
	return s.cfg.RPCI.Call(ctx, req)
}

func (s *Service) status(msg string) {
	if s.cfg.OnStatus != nil {
		s.cfg.OnStatus(msg)
	}
}

func printable(b []byte) string { return fmt.Sprintf("%q", b) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
