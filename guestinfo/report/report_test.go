package report

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/rpc"
)

// fakeVMX records requests and refuses the ones refuse says.
type fakeVMX struct {
	mu     sync.Mutex
	reqs   [][]byte
	refuse func(req []byte) bool
}

func (f *fakeVMX) Call(ctx context.Context, req []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, append([]byte(nil), req...))
	if f.refuse != nil && f.refuse(req) {
		return nil, &rpc.ReplyError{Request: "x", Text: "Unknown command"}
	}
	return []byte{}, nil
}

// kinds summarizes the requests since the last call as "type" labels.
func (f *fakeVMX) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.reqs {
		if d, ok := bytes.CutPrefix(r, []byte("SetGuestDiskInfo ")); ok {
			_ = d
			out = append(out, "disk")
			continue
		}
		typ, _, err := infoproto.SplitSetGuestInfo(bytes.TrimPrefix(r, []byte("SetGuestInfo ")))
		if err != nil {
			out = append(out, "?")
			continue
		}
		out = append(out, fmt.Sprint(typ))
	}
	f.reqs = nil
	return out
}

type fakeSource struct {
	mu       sync.Mutex
	hostname string
	addrs    []string
	nics     int
	uptime   int64
	stamp    string
	sent     []string
}

func (s *fakeSource) Hostname() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostname, nil
}

func (s *fakeSource) OS(*guestinfo.Config) (guestinfo.OSInfo, error) {
	return guestinfo.OSInfo{ShortName: "vmware-photon-64", FullName: "Linux 6.1 VMware Photon OS", Detailed: infoproto.Detailed{FamilyName: "Linux"}}, nil
}

func (s *fakeSource) NicInfo(cfg *guestinfo.Config, host string) (guestinfo.NicResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := &infoproto.NicInfo{DNS: &infoproto.DNSConfig{HostName: &host}}
	for i := range max(s.nics, 1) {
		nic := infoproto.NIC{MAC: fmt.Sprintf("00:50:56:00:00:%02x", i)}
		for _, a := range s.addrs {
			nic.IPs = append(nic.IPs, infoproto.IPEntry{Addr: netip.MustParseAddr(a), PrefixLen: 24, Status: 1})
		}
		info.NICs = append(info.NICs, nic)
	}
	return guestinfo.NicResult{Info: info, OverLimit: max(s.nics-16, 0)}, nil
}

func (s *fakeSource) Disks(*guestinfo.Config) ([]infoproto.Disk, error) {
	return []infoproto.Disk{{Name: "/", Size: 100, Free: 50, FSType: "ext4"}}, nil
}

func (s *fakeSource) Uptime() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uptime += 100
	return s.uptime, nil
}

func (s *fakeSource) OSStamp() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stamp
}

func (s *fakeSource) set(f func(s *fakeSource)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// fakeWatcher delivers events on demand.
type fakeWatcher struct{ ch chan struct{} }

func (w *fakeWatcher) Watch(ctx context.Context, changed func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.ch:
			changed()
		}
	}
}

type harness struct {
	vmx *fakeVMX
	src *fakeSource
	w   *fakeWatcher
	r   *Reporter
	log *bytes.Buffer
}

// start runs a reporter inside the synctest bubble; stop it with the
// returned cancel and synctest.Wait.
func start(t *testing.T, tweak func(*Reporter)) (*harness, func()) {
	h := &harness{
		vmx: &fakeVMX{},
		src: &fakeSource{hostname: "vm1", addrs: []string{"198.51.100.10"}},
		w:   &fakeWatcher{ch: make(chan struct{})},
		log: &bytes.Buffer{},
	}
	h.r = &Reporter{Sender: h.vmx, Source: h.src, Watcher: h.w, BuildNumber: "build-1", Logger: slog.New(slog.NewTextHandler(h.log, nil))}
	if tweak != nil {
		tweak(h.r)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	return h, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestFirstGatherOrderAndCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, nil)
		defer stop()
		synctest.Wait()
		// build, OS detailed, disk, hostname, NIC V3, uptime.
		if got := strings.Join(h.vmx.take(), " "); got != "4 11 disk 1 10 7" {
			t.Fatalf("first gather: %s", got)
		}
		// Nothing changed: the periodic resync sends only the uptime.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "7" {
			t.Fatalf("resync: %s", got)
		}
		// Reset clears the cache: everything again.
		h.r.Reset()
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "4 11 disk 1 10 7" {
			t.Fatalf("after reset: %s", got)
		}
	})
}

func TestNetworkEventDebounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, nil)
		defer stop()
		synctest.Wait()
		h.vmx.take()
		h.src.set(func(s *fakeSource) { s.addrs = append(s.addrs, "198.51.100.11") })
		start := time.Now()
		// A burst of events: one gather, DefaultDebounce after the last.
		for range 5 {
			h.w.ch <- struct{}{}
			time.Sleep(50 * time.Millisecond)
		}
		synctest.Wait()
		time.Sleep(DefaultDebounce)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "10" {
			t.Fatalf("after burst: %q", got)
		}
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Fatalf("took %v", el)
		}
		// An event storm is bounded by MaxDelay.
		h.src.set(func(s *fakeSource) { s.addrs = append(s.addrs, "198.51.100.12") })
		start = time.Now()
		for time.Since(start) < 3*time.Second {
			h.w.ch <- struct{}{}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
			if len(h.vmx.reqs) > 0 {
				break
			}
		}
		if got := strings.Join(h.vmx.take(), " "); got != "10" || time.Since(start) > DefaultMaxDelay+150*time.Millisecond {
			t.Fatalf("storm: %q after %v", got, time.Since(start))
		}
		// An event with no change sends nothing.
		h.w.ch <- struct{}{}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := h.vmx.take(); len(got) != 0 {
			t.Fatalf("unchanged: %v", got)
		}
	})
}

func TestHostnameAndOSNoticed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, nil)
		defer stop()
		synctest.Wait()
		h.vmx.take()
		h.src.set(func(s *fakeSource) { s.hostname = "vm2" })
		time.Sleep(DefaultHostCheck)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "1 10" {
			t.Fatalf("hostname change: %q", got)
		}
		// An os-release change re-reads the OS; unchanged data is not sent.
		h.src.set(func(s *fakeSource) { s.stamp = "new" })
		time.Sleep(DefaultHostCheck)
		synctest.Wait()
		if got := h.vmx.take(); len(got) != 0 {
			t.Fatalf("OS unchanged: %v", got)
		}
	})
}

func TestFallbackLadders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refuse := func(req []byte) bool {
			return bytes.HasPrefix(req, []byte("SetGuestInfo  10 ")) ||
				bytes.HasPrefix(req, []byte("SetGuestInfo  11 ")) ||
				bytes.HasPrefix(req, []byte("SetGuestDiskInfo "))
		}
		h, stop := start(t, func(r *Reporter) { r.Sender.(*fakeVMX).refuse = refuse })
		defer stop()
		h.src.set(func(s *fakeSource) {
			for i := range 100 {
				s.addrs = append(s.addrs, fmt.Sprintf("203.0.113.%d", i))
			}
		})
		h.r.Reset()
		synctest.Wait()
		h.vmx.take()
		// Second gather: the refused rungs are remembered.
		h.src.set(func(s *fakeSource) { s.addrs = s.addrs[1:] })
		h.r.Update()
		synctest.Wait()
		h.vmx.mu.Lock()
		reqs := h.vmx.reqs
		h.vmx.mu.Unlock()
		if got := strings.Join(h.vmx.take(), " "); got != "9 7" {
			t.Fatalf("remembered rungs: %q", got)
		}
		var v2 []byte
		for _, r := range reqs {
			if p, ok := bytes.CutPrefix(r, []byte("SetGuestInfo  9 ")); ok {
				v2 = p
			}
		}
		n, err := infoproto.DecodeNicInfo(v2)
		if err != nil || len(n.NICs[0].IPs) != infoproto.MaxV2IPs {
			t.Fatalf("V2 payload: %v", err)
		}
		// After a reset the better rungs are tried again.
		h.r.Reset()
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "4 11 5 6 disk 3 1 10 9 7" {
			t.Fatalf("after reset: %q", got)
		}
	})
}

func TestNICLimitLogRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, func(r *Reporter) { r.LimitLogPeriod = time.Hour })
		defer stop()
		synctest.Wait()
		for i := range 50 {
			h.src.set(func(s *fakeSource) { s.nics = 20; s.addrs = []string{fmt.Sprintf("198.51.100.%d", i)} })
			h.w.ch <- struct{}{}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		if n := strings.Count(h.log.String(), "NIC limit (16) reached"); n != 1 {
			t.Fatalf("logged %d times", n)
		}
	})
}

func TestTransportFailureRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := true
		var mu sync.Mutex
		h, stop := start(t, func(r *Reporter) {
			r.Sender = senderFunc(func(ctx context.Context, req []byte) ([]byte, error) {
				mu.Lock()
				defer mu.Unlock()
				if fail {
					return nil, fmt.Errorf("channel down")
				}
				return r.Source.(*fakeSource).record(req)
			})
		})
		defer stop()
		synctest.Wait()
		mu.Lock()
		fail = false
		mu.Unlock()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		// Nothing was cached while the channel was down: all is sent.
		if got := strings.Join(h.src.sent, " "); got != "4 11 disk 1 10 7" {
			t.Fatalf("after recovery: %q", got)
		}
	})
}

type senderFunc func(ctx context.Context, req []byte) ([]byte, error)

func (f senderFunc) Call(ctx context.Context, req []byte) ([]byte, error) { return f(ctx, req) }

// record notes request kinds for TestTransportFailureRetried.
func (s *fakeSource) record(req []byte) ([]byte, error) {
	v := &fakeVMX{}
	v.Call(context.Background(), req)
	s.sent = append(s.sent, v.take()...)
	return []byte{}, nil
}

func TestPollIntervalReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		cfg := guestinfo.DefaultConfig()
		cfg.PollInterval = -1 // disabled
		h, stop := start(t, func(r *Reporter) {
			r.Config = func() guestinfo.Config { mu.Lock(); defer mu.Unlock(); return cfg }
		})
		defer stop()
		synctest.Wait()
		h.vmx.take()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		if got := h.vmx.take(); len(got) != 0 {
			t.Fatalf("disabled poll sent %v", got)
		}
		mu.Lock()
		cfg.PollInterval = 10 * time.Second
		mu.Unlock()
		h.r.Update()
		synctest.Wait()
		h.vmx.take()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "7" {
			t.Fatalf("after reload: %q", got)
		}
	})
}

// failingWatcher cannot watch.
type failingWatcher struct{}

func (failingWatcher) Watch(context.Context, func()) error { return fmt.Errorf("no inotify here") }

// TestHostWatcher: with a host watcher the host name is not polled; its
// event sends the change (host name and the DNS host name in NicInfo)
// after the debounce. A watcher that fails brings the periodic check back.
func TestHostWatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hw := &fakeWatcher{ch: make(chan struct{})}
		h, stop := start(t, func(r *Reporter) { r.HostWatcher = hw })
		defer stop()
		synctest.Wait()
		h.vmx.take()
		h.src.set(func(s *fakeSource) { s.hostname = "vm2" })
		time.Sleep(10 * DefaultHostCheck) // before the 30 s resync
		synctest.Wait()
		if got := h.vmx.take(); len(got) != 0 {
			t.Fatalf("polled despite the host watcher: %v", got)
		}
		hw.ch <- struct{}{}
		time.Sleep(DefaultDebounce)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "1 10" {
			t.Fatalf("after the host event: %q", got)
		}
		// An os-release change comes the same way; unchanged data is not sent.
		h.src.set(func(s *fakeSource) { s.stamp = "upgraded" })
		hw.ch <- struct{}{}
		time.Sleep(DefaultDebounce)
		synctest.Wait()
		if got := h.vmx.take(); len(got) != 0 {
			t.Fatalf("OS unchanged: %v", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, func(r *Reporter) { r.HostWatcher = failingWatcher{} })
		defer stop()
		synctest.Wait()
		h.vmx.take()
		h.src.set(func(s *fakeSource) { s.hostname = "vm3" })
		time.Sleep(DefaultHostCheck)
		synctest.Wait()
		if got := strings.Join(h.vmx.take(), " "); got != "1 10" {
			t.Fatalf("the fallback check: %q", got)
		}
		if !strings.Contains(h.log.String(), "no inotify here") {
			t.Errorf("log: %s", h.log.String())
		}
	})
}

// TestChurnAtMostOnePerSecond: a container host whose network changes ten
// times a second for a minute sends at most one NIC info update per
// second (the storm is coalesced by MaxDelay), and within a second after
// the churn stops the last update sent is the last state.
func TestChurnAtMostOnePerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, stop := start(t, nil)
		defer stop()
		synctest.Wait()
		h.vmx.take()
		start := time.Now()
		last := ""
		for i := 0; time.Since(start) < time.Minute; i++ {
			last = fmt.Sprintf("10.99.%d.%d", i/250, i%250+1)
			h.src.set(func(s *fakeSource) { s.addrs = []string{"198.51.100.10", last} })
			h.w.ch <- struct{}{}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(DefaultMaxDelay)
		synctest.Wait()
		h.vmx.mu.Lock()
		reqs := h.vmx.reqs
		h.vmx.mu.Unlock()
		var nics [][]byte
		for _, r := range reqs {
			typ, payload, err := infoproto.SplitSetGuestInfo(bytes.TrimPrefix(r, []byte("SetGuestInfo ")))
			if err == nil && typ == infoproto.InfoIPAddressV3 {
				nics = append(nics, payload)
			}
		}
		if len(nics) > 61 || len(nics) < 50 {
			t.Fatalf("%d NIC info updates in a minute of churn and the second after, want at most 61 and about one a second", len(nics))
		}
		n, err := infoproto.DecodeNicInfo(nics[len(nics)-1])
		if err != nil || len(n.NICs) == 0 || len(n.NICs[0].IPs) != 2 || n.NICs[0].IPs[1].Addr.String() != last {
			t.Fatalf("the last update is not the last state (%s): %+v %v", last, n, err)
		}
	})
}
