// Package report is the guest info reporter: it sends what guestinfo
// collects to the VMX with SetGuestInfo and SetGuestDiskInfo, only when a
// value changed, and keeps vSphere current within a few hundred
// milliseconds of a network change (a netlink subscription, debounced)
// instead of open-vm-tools' 30-second poll. Host name, os-release and DNS
// configuration changes come the same way from a HostWatcher (or, without
// one, a cheap check every few seconds); a periodic resync (poll-interval,
// 30 s by default) catches anything else.
//
// The reporter is a component of vmtoolsd: Run it with the daemon's RPCI
// client as Sender and call Reset after every TCLO reset, which clears the
// cache (everything is sent again, as after vMotion) and the fallback
// ladders: NicInfo V3 -> V2 capped at 64 IPs per NIC; OS detailed data ->
// OS names (types 5 and 6); disk info JSON v1 -> binary V0. A rung that
// the VMX refused is remembered until the next reset.
package report

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/rpc"
)

// Sender sends one RPCI request; *rpc.Client is one. A refusal by the VMX
// must come back as an error wrapping *rpc.ReplyError.
type Sender interface {
	Call(ctx context.Context, req []byte) ([]byte, error)
}

// Source is what the reporter reports; *guestinfo.Collector is one.
type Source interface {
	Hostname() (string, error)
	OS(cfg *guestinfo.Config) (guestinfo.OSInfo, error)
	NicInfo(cfg *guestinfo.Config, hostname string) (guestinfo.NicResult, error)
	Disks(cfg *guestinfo.Config) ([]infoproto.Disk, error)
	Uptime() (int64, error)
	OSStamp() string
}

// Watcher calls changed whenever the network configuration changes, until
// ctx ends; *guestinfo.Netlink is one.
type Watcher interface {
	Watch(ctx context.Context, changed func()) error
}

// Defaults.
const (
	DefaultDebounce       = 200 * time.Millisecond
	DefaultMaxDelay       = time.Second
	DefaultHostCheck      = 2 * time.Second
	DefaultLimitLogPeriod = 10 * time.Minute
)

// Reporter sends guest info. Fields are set before Run.
type Reporter struct {
	Sender Sender
	Source Source
	// Watcher, if set, makes the reporter event-driven.
	Watcher Watcher
	// HostWatcher, if set, reports host name, os-release and DNS
	// configuration changes (*guestinfo.HostWatch); they are handled as
	// network changes are. The periodic HostCheck then runs only if it
	// fails.
	HostWatcher Watcher
	// Config returns the current tools.conf settings; it is called at
	// every gather, so a reload takes effect at the next one. nil means
	// guestinfo.DefaultConfig.
	Config func() guestinfo.Config
	// BuildNumber is sent as INFO_BUILD_NUMBER ("build-NNN"); "" sends
	// nothing.
	BuildNumber string
	// Debounce is the quiet time after a netlink event before the NICs
	// are gathered; MaxDelay bounds the wait during a storm of events.
	Debounce, MaxDelay time.Duration
	// HostCheck is the period of the cheap hostname and os-release check
	// done without a HostWatcher.
	HostCheck time.Duration
	// LimitLogPeriod rate-limits the "NIC limit reached" warning.
	LimitLogPeriod time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger

	mu      sync.Mutex
	signals chan signal

	// State below is owned by the Run goroutine.
	cache        map[int][]byte // last accepted payload per SetGuestInfo type
	diskCache    []byte         // last accepted disk payload (V1 JSON or V0)
	nicV2        bool           // the VMX refused V3; use V2 capped
	noDetailed   bool           // the VMX refused OS detailed data
	diskV0       bool           // the VMX refused SetGuestDiskInfo
	lastLimitLog time.Time
	lastTrimLog  time.Time
	hostname     string
	osStamp      string
}

type signal int

const (
	sigReset signal = iota
	sigUpdate
)

func (r *Reporter) init() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.signals == nil {
		r.signals = make(chan signal, 8)
	}
}

// Reset clears the cache and the fallback ladders and gathers everything
// again: call it after each TCLO reset. It never blocks.
func (r *Reporter) Reset() { r.signal(sigReset) }

// Update asks for a full gather soon (e.g. after a tools.conf reload).
func (r *Reporter) Update() { r.signal(sigUpdate) }

func (r *Reporter) signal(s signal) {
	r.init()
	select {
	case r.signals <- s:
	default: // a full gather is already queued
	}
}

func (r *Reporter) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Reporter) config() guestinfo.Config {
	if r.Config == nil {
		return guestinfo.DefaultConfig()
	}
	return r.Config()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run gathers at once, then on every network change (debounced), every
// poll interval, on Reset and Update, and when the hostname, os-release or
// DNS configuration changes, until ctx ends. It returns nil on cancellation, after the
// watcher goroutine has ended.
func (r *Reporter) Run(ctx context.Context) error {
	if r.Sender == nil || r.Source == nil {
		return errors.New("report: reporter needs a Sender and a Source")
	}
	r.init()
	r.clear()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	events := make(chan struct{}, 1)
	notify := func() {
		select {
		case events <- struct{}{}:
		default:
		}
	}
	if r.Watcher != nil {
		wg.Go(func() {
			err := r.Watcher.Watch(ctx, notify)
			if err != nil && ctx.Err() == nil {
				r.log().Warn("guest info: network change notifications unavailable; relying on the periodic gather", "err", err)
			}
		})
	}
	// Without a host watcher (or when it fails) the host name and
	// os-release are checked every HostCheck.
	hostFailed := make(chan struct{})
	if r.HostWatcher != nil {
		wg.Go(func() {
			err := r.HostWatcher.Watch(ctx, notify)
			if err != nil && ctx.Err() == nil {
				r.log().Info("guest info: host name and OS change notifications unavailable; checking every few seconds", "err", err)
				close(hostFailed)
			}
		})
	}
	var check *time.Ticker
	var checkC <-chan time.Time
	startCheck := func() {
		check = time.NewTicker(orDefault(r.HostCheck, DefaultHostCheck))
		checkC = check.C
	}
	if r.HostWatcher == nil {
		startCheck()
	}
	defer func() {
		if check != nil {
			check.Stop()
		}
	}()

	// The resync ticker follows poll-interval; a tools.conf reload takes
	// effect at the next Update or Reset.
	var poll time.Duration
	var pollT *time.Ticker
	var pollC <-chan time.Time
	setPoll := func() {
		p := r.config().PollInterval
		if p == 0 {
			p = guestinfo.DefaultPollInterval
		}
		if p == poll {
			return
		}
		poll = p
		if pollT != nil {
			pollT.Stop()
			pollT, pollC = nil, nil
		}
		if p > 0 {
			pollT = time.NewTicker(p)
			pollC = pollT.C
		}
	}
	setPoll()
	defer func() {
		if pollT != nil {
			pollT.Stop()
		}
	}()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var firstEvent time.Time // zero when no event is pending

	r.gatherAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-r.signals:
			if s == sigReset {
				r.clear()
			}
			setPoll()
			r.gatherAll(ctx)
		case <-pollC:
			r.gatherAll(ctx)
		case <-events:
			now := time.Now()
			if firstEvent.IsZero() {
				firstEvent = now
			}
			wait := orDefault(r.Debounce, DefaultDebounce)
			if left := orDefault(r.MaxDelay, DefaultMaxDelay) - now.Sub(firstEvent); left < wait {
				wait = max(left, 0)
			}
			debounce.Reset(wait)
		case <-debounce.C:
			firstEvent = time.Time{}
			c := r.config()
			r.sendHostname(ctx)
			if r.Source.OSStamp() != r.osStamp {
				r.sendOS(ctx, &c)
			}
			r.sendNICs(ctx, &c) // the DNS configuration is in NicInfo
		case <-hostFailed:
			hostFailed = nil
			startCheck()
		case <-checkC:
			r.checkHost(ctx)
		}
	}
}

// clear forgets every sent value and every refused rung.
func (r *Reporter) clear() {
	r.cache = map[int][]byte{}
	r.diskCache = nil
	r.nicV2, r.noDetailed, r.diskV0 = false, false, false
}

// gatherAll sends everything in vmtoolsd's order: build number, OS, disks,
// hostname, NICs, uptime.
func (r *Reporter) gatherAll(ctx context.Context) {
	cfg := r.config()
	if r.BuildNumber != "" {
		r.sendText(ctx, infoproto.InfoBuildNumber, r.BuildNumber)
	}
	r.sendOS(ctx, &cfg)
	if !cfg.DisableDiskInfo {
		r.sendDisks(ctx, &cfg)
	}
	r.sendHostname(ctx)
	r.sendNICs(ctx, &cfg)
	if up, err := r.Source.Uptime(); err == nil {
		// Uptime changes every time; it is always sent.
		r.send(ctx, infoproto.TextMessage(infoproto.InfoUptime, strconv.FormatInt(up, 10)))
	} else {
		r.log().Debug("guest info: uptime", "err", err)
	}
}

// checkHost sends the hostname and OS when they changed; it costs one
// uname and one stat.
func (r *Reporter) checkHost(ctx context.Context) {
	if h, err := r.Source.Hostname(); err == nil && h != r.hostname {
		cfg := r.config()
		r.sendHostname(ctx)
		r.sendNICs(ctx, &cfg) // the DNS host name is in NicInfo too
	}
	if st := r.Source.OSStamp(); st != r.osStamp {
		cfg := r.config()
		r.sendOS(ctx, &cfg)
	}
}

// send sends one request and reports whether the VMX accepted it; a
// refusal is a *rpc.ReplyError, anything else a transport failure.
func (r *Reporter) send(ctx context.Context, req []byte) error {
	_, err := r.Sender.Call(ctx, req)
	if err != nil {
		var re *rpc.ReplyError
		if !errors.As(err, &re) {
			r.log().Debug("guest info: send failed", "err", err)
		}
	}
	return err
}

func refused(err error) bool {
	var re *rpc.ReplyError
	return errors.As(err, &re)
}

// sendCached sends req unless payload equals the cached value of key.
func (r *Reporter) sendCached(ctx context.Context, key int, payload, req []byte) error {
	if old, ok := r.cache[key]; ok && bytes.Equal(old, payload) {
		return nil
	}
	if err := r.send(ctx, req); err != nil {
		return err
	}
	r.cache[key] = payload
	return nil
}

func (r *Reporter) sendText(ctx context.Context, typ int, v string) error {
	return r.sendCached(ctx, typ, []byte(v), infoproto.TextMessage(typ, v))
}

func (r *Reporter) sendHostname(ctx context.Context) {
	h, err := r.Source.Hostname()
	if err != nil {
		r.log().Debug("guest info: hostname", "err", err)
		return
	}
	r.hostname = h
	r.sendText(ctx, infoproto.InfoDNSName, h)
}

func (r *Reporter) sendOS(ctx context.Context, cfg *guestinfo.Config) {
	r.osStamp = r.Source.OSStamp()
	info, err := r.Source.OS(cfg)
	if err != nil {
		r.log().Debug("guest info: OS", "err", err)
		return
	}
	if !r.noDetailed {
		payload := infoproto.EncodeOSDetailed(infoproto.OSDetailed{ShortName: info.ShortName, FullName: info.FullName, Detailed: info.Detailed.String()})
		err := r.sendCached(ctx, infoproto.InfoOSDetailed, payload, infoproto.BinaryMessage(infoproto.InfoOSDetailed, payload))
		if !refused(err) {
			return
		}
		r.log().Info("guest info: the VMX refused OS detailed data; sending OS names until the next reset")
		r.noDetailed = true
	}
	r.sendText(ctx, infoproto.InfoOSNameFull, info.FullName)
	r.sendText(ctx, infoproto.InfoOSName, info.ShortName)
}

func (r *Reporter) sendDisks(ctx context.Context, cfg *guestinfo.Config) {
	disks, err := r.Source.Disks(cfg)
	if err != nil {
		r.log().Debug("guest info: disks", "err", err)
		return
	}
	if !r.diskV0 {
		disks := infoproto.FitDisks(disks, infoproto.MaxMessage)
		doc := infoproto.EncodeDiskInfoV1(disks)
		if bytes.Equal(doc, r.diskCache) {
			return
		}
		reply, err := r.Sender.Call(ctx, infoproto.DiskInfoMessage(doc))
		if err == nil && len(bytes.TrimRight(reply, "\x00")) == 0 {
			r.diskCache = doc
			return
		}
		if err != nil && !refused(err) {
			return // transport trouble: try again next time
		}
		r.log().Info("guest info: the VMX refused SetGuestDiskInfo; sending the binary disk list until the next reset")
		r.diskV0 = true
		r.diskCache = nil
	}
	payload := infoproto.EncodeDiskInfoV0(disks)
	if bytes.Equal(payload, r.diskCache) {
		return
	}
	if err := r.send(ctx, infoproto.BinaryMessage(infoproto.InfoDiskFreeSpace, payload)); err == nil {
		r.diskCache = payload
	}
}

// nicKey caches NicInfo under a key of its own: the V3 encoding of the
// full structure, so that any change is sent whatever rung is used.
const nicKey = -1

func (r *Reporter) sendNICs(ctx context.Context, cfg *guestinfo.Config) {
	res, err := r.Source.NicInfo(cfg, r.hostname)
	if err != nil {
		r.log().Debug("guest info: NICs", "err", err)
		return
	}
	if res.OverLimit > 0 && time.Since(r.lastLimitLog) >= orDefault(r.LimitLogPeriod, DefaultLimitLogPeriod) {
		r.lastLimitLog = time.Now()
		r.log().Warn("guest info: NIC limit (16) reached; the lowest-ranked NICs are not reported", "left_out", res.OverLimit, "reported", res.Names)
	}
	full, err := infoproto.EncodeNicInfo(res.Info)
	if err != nil {
		r.log().Warn("guest info: NIC info does not encode", "err", err)
		return
	}
	if old, ok := r.cache[nicKey]; ok && bytes.Equal(old, full) {
		return
	}
	for {
		typ, info := infoproto.InfoIPAddressV3, res.Info
		if r.nicV2 {
			typ, info = infoproto.InfoIPAddressV2, infoproto.CapIPs(res.Info, infoproto.MaxV2IPs)
		}
		budget := infoproto.MaxMessage - len(infoproto.BinaryPrefix(typ))
		fit, trimmed := infoproto.FitNicInfo(info, budget)
		if trimmed.Any() && time.Since(r.lastTrimLog) >= orDefault(r.LimitLogPeriod, DefaultLimitLogPeriod) {
			r.lastTrimLog = time.Now()
			r.log().Warn("guest info: NIC info trimmed to fit 64 KiB", "routes", trimmed.Routes, "dns", trimmed.DNSEntries, "link_local", trimmed.LinkLocal, "addresses", trimmed.Addresses, "nics", trimmed.NICs)
		}
		payload, err := infoproto.EncodeNicInfo(fit)
		if err != nil {
			r.log().Warn("guest info: NIC info does not encode", "err", err)
			return
		}
		err = r.send(ctx, infoproto.BinaryMessage(typ, payload))
		switch {
		case err == nil:
			r.cache[nicKey] = full
			return
		case !refused(err):
			return
		case !r.nicV2:
			r.log().Info("guest info: the VMX refused NicInfo V3; using V2 (64 addresses per NIC) until the next reset")
			r.nicV2 = true
		default:
			// Every rung refused: start again from V3 next time, as
			// vmtoolsd does after a total failure.
			r.log().Warn("guest info: the VMX refused every NicInfo version", "err", err)
			r.nicV2 = false
			return
		}
	}
}
