package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/netnstest"
	"github.com/govmtools/govmtools/internal/testutil"
)

var (
	fleetSize = flag.Int("fleet", 500, "guests in the fleet scene")
	fleetIdle = flag.Duration("fleet-idle", 30*time.Second, "idle window of the fleet scene")
)

func init() {
	benchmarks = append(benchmarks, benchmark{"fleet", benchFleet})
}

// fleetVM is one VM of `vmxsim serve --vms`, as its DIR/ctl.sock lists
// it (GET /vms).
type fleetVM struct {
	Dir  string `json:"dir"`
	Name string `json:"name"`
	MAC  string `json:"mac"`
}

// fleetGuest is one guest of the scene: its namespace, its address and
// the vmtoolsd running there.
type fleetGuest struct {
	vm   fleetVM
	ns   string
	ip   string
	cmd  *exec.Cmd
	done chan struct{}
}

// fleetScene is what the scene made, so that it can undo all of it.
type fleetScene struct {
	prefix string
	made   []string // namespaces asked for, deleted at the end
	guests []*fleetGuest
}

// benchFleet is many guests behind one vSphere front end: `vmxsim serve
// --vms N --vsphere` (one vcsim inventory of N VMs, each with its own
// simulated VMX and sockets), and in each of N network namespaces
// (loopback up, eth0 a veth with its VM's MAC and a 10.77/16 address)
// our vmtoolsd against its VM over unix:DIR. Measured: the time from the
// first guest's start until one govc query of the inventory shows every
// VM with tools running and its own guest's address; each vmtoolsd's
// VmRSS; the host messages per guest per second while idle (vmxsim's
// counters: RPCIs, the VMX's TCLO commands and the guests' answers); and
// the front end's CPU (vmxsim's utime+stime) while starting and idle.
func benchFleet(ctx context.Context, e *env) ([]row, error) {
	if ok, what := netnstest.Available(); !ok {
		return nil, fmt.Errorf("needs %s", what)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, fmt.Errorf("needs util-linux's nsenter: %w", err)
	}
	govc := filepath.Join(e.scratch, "govc")
	if out, err := exec.Command("go", "build", "-o", govc, "./internal/govc").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build govc: %v\n%s", err, out)
	}
	n := *fleetSize
	dir, err := os.MkdirTemp(e.scratch, "fleet-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "vmxsim"), "serve", "--vms", strconv.Itoa(n), "--dir", dir, "--vsphere", "127.0.0.1:0", "--log-level", "error")
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	p, err := testutil.LaunchSim(cmd, dir, 3*time.Minute, nil)
	if err != nil {
		return nil, fmt.Errorf("vmxsim serve --vms %d did not start: %w", n, err)
	}
	defer p.Stop(syscall.SIGTERM, time.Minute)
	upWall := time.Since(t0)
	pid := cmd.Process.Pid
	cpuUp, err := cpuTime(pid)
	if err != nil {
		return nil, err
	}
	ctl := fleetCtl(dir)
	var vms []fleetVM
	if err := getJSON(ctx, ctl, "http://fleet/vms", &vms); err != nil || len(vms) != n {
		return nil, fmt.Errorf("fleet /vms: %d VMs, %v", len(vms), err)
	}
	url, err := getText(ctx, ctl, "http://fleet/vsphere")
	if err != nil {
		return nil, err
	}

	s := &fleetScene{prefix: fmt.Sprintf("gvfleet%d-", os.Getpid())}
	defer s.cleanup()
	tNS := time.Now()
	if err := s.makeNamespaces(vms); err != nil {
		return nil, err
	}
	nsWall := time.Since(tNS)
	cpu0, _ := cpuTime(pid)
	// The guests start one after another while govc polls, as a user
	// watches a fleet boot.
	tStart := time.Now()
	pollCtx, stopPoll := context.WithCancel(ctx)
	var startWall time.Duration
	started := make(chan error, 1)
	go func() {
		err := s.startGuests(ctx, e, nsenter)
		startWall = time.Since(tStart)
		if err != nil {
			stopPoll()
		}
		started <- err
	}()
	shown, queries, err := s.waitShown(pollCtx, govc, url, tStart, 2*time.Minute)
	stopPoll()
	if serr := <-started; serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	cpu1, _ := cpuTime(pid)
	rssMed, rssMax, err := s.rss()
	if err != nil {
		return nil, err
	}
	idle, err := s.idle(ctx, ctl, pid, *fleetIdle)
	if err != nil {
		return nil, err
	}
	return s.rows(fleetFigures{n: n, upWall: upWall, cpuUp: cpuUp, nsWall: nsWall, startWall: startWall, shown: shown, queries: queries,
		cpuStart: cpu1 - cpu0, rssMed: rssMed, rssMax: rssMax, idle: idle}), nil
}

// fleetFigures are what the scene measured.
type fleetFigures struct {
	n                                int
	upWall, nsWall, startWall, shown time.Duration
	queries                          int
	cpuUp, cpuStart                  float64 // vmxsim CPU seconds
	rssMed, rssMax                   int64   // kB
	idle                             fleetIdleFigures
}

func (s *fleetScene) rows(f fleetFigures) []row {
	how := fmt.Sprintf("one `vmxsim serve --vms %d --vsphere` (one vcsim inventory, each VM its own simulated VMX and unix:DIR sockets, no trap); %d network namespaces, each lo up and eth0 a veth with its VM's MAC and a 10.77/16 address, our vmtoolsd in each (nsenter) against its VM; 2 CPUs shared by guests, simulator and govc", f.n, f.n)
	return []row{
		{fmt.Sprintf("Fleet of %d guests: first guest started → one govc query shows all %d tools running with the right IP", f.n, f.n),
			fmt.Sprintf("%.2f s", f.shown.Seconds()), "—",
			fmt.Sprintf("%s; all %d vmtoolsd started (one after another) in %.2f s; `govc object.collect -json -type m / name guest.toolsRunningStatus guest.ipAddress` polled every 250 ms from the first start on, %s; the front end itself came up in %.2f s, the namespaces in %.2f s", how, f.n, f.startWall.Seconds(), plural(f.queries, "query", "queries"), f.upWall.Seconds(), f.nsWall.Seconds())},
		{fmt.Sprintf("Fleet of %d guests: vmtoolsd RSS per guest (median, max)", f.n),
			fmt.Sprintf("%.1f MiB, %.1f MiB", float64(f.rssMed)/1024, float64(f.rssMax)/1024), "—",
			"VmRSS of each vmtoolsd once all were shown in vSphere"},
		{fmt.Sprintf("Fleet of %d guests: host messages per guest per second, idle", f.n),
			fmt.Sprintf("%.2f (%.2f RPCI, %.2f TCLO commands, %.2f TCLO answers)", f.idle.rpci+f.idle.commands+f.idle.replies, f.idle.rpci, f.idle.commands, f.idle.replies), "—",
			fmt.Sprintf("vmxsim's counters of every VM (ctl state transports.unix.rpci, tclo.commands, tclo.replies) over %.0f s after all were shown; the VMX pings every 1 s", f.idle.window.Seconds())},
		{fmt.Sprintf("Fleet of %d guests: vSphere front end CPU (vmxsim user+sys)", f.n),
			fmt.Sprintf("start: %.2f s; idle: %.1f%% of a CPU", f.cpuStart, 100*f.idle.cpu/f.idle.window.Seconds()), "—",
			fmt.Sprintf("one process for the front end and all %d VMXs; start = from the first guest's start until govc showed all (govc's queries included); making the %d VMs before any guest: %.2f s; idle over the idle window, no client connected", f.n, f.n, f.cpuUp)},
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fleetCtl reaches every ctl.sock of a fleet directory: host "fleet" is
// DIR/ctl.sock, host "vm-0001" DIR/vm-0001/ctl.sock.
func fleetCtl(dir string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 1,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			sock := filepath.Join(dir, "ctl.sock")
			if host != "fleet" {
				sock = filepath.Join(dir, host, "ctl.sock")
			}
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func getText(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(b.String()))
	}
	return strings.TrimSpace(b.String()), nil
}

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	s, err := getText(ctx, hc, url)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), v)
}

// makeNamespaces creates one namespace per VM (one `ip -batch` for all),
// then sets up each (one `ip -n NS -batch` each): lo up, eth0 a veth
// with the VM's MAC and address, its peer end in the same namespace.
func (s *fleetScene) makeNamespaces(vms []fleetVM) error {
	var add []string
	for i, vm := range vms {
		n := i + 1
		g := &fleetGuest{vm: vm, ns: fmt.Sprintf("%s%d", s.prefix, n), ip: fmt.Sprintf("10.77.%d.%d", n/256, n%256)}
		g.done = make(chan struct{}) // closed once its vmtoolsd exits
		s.guests = append(s.guests, g)
		s.made = append(s.made, g.ns)
		add = append(add, "netns add "+g.ns)
	}
	if err := ipBatch(nil, add); err != nil {
		return err
	}
	for _, g := range s.guests {
		if err := ipBatch([]string{"-n", g.ns}, []string{
			"link set lo up",
			"link add eth0 type veth peer name eth0p",
			"link set eth0 address " + g.vm.MAC,
			"addr add " + g.ip + "/16 dev eth0",
			"link set eth0 up",
			"link set eth0p up",
		}); err != nil {
			return err
		}
	}
	return nil
}

// ipBatch runs `ip [opts] -batch -` with lines on stdin.
func ipBatch(opts, lines []string) error {
	cmd := exec.Command("ip", append(opts, "-batch", "-")...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s -batch: %v: %s", strings.Join(opts, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startGuests starts our vmtoolsd in every namespace, one after another.
func (s *fleetScene) startGuests(ctx context.Context, e *env, nsenter string) error {
	for i, g := range s.guests {
		if err := ctx.Err(); err != nil {
			return err
		}
		conf := filepath.Join(e.scratch, "fleet-guests", strconv.Itoa(i+1))
		if err := os.MkdirAll(conf, 0o755); err != nil {
			return err
		}
		logf, err := os.Create(filepath.Join(conf, "vmtoolsd.log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(nsenter, "--net=/run/netns/"+g.ns, "--", filepath.Join(e.bin, "vmtoolsd"),
			"--rpc", "unix:"+g.vm.Dir, "--conf-dir", conf, "--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "warn")
		cmd.Env = append(os.Environ(), "GOVMTOOLS_SIMULATED=1")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return fmt.Errorf("start vmtoolsd in %s: %w", g.ns, err)
		}
		g.cmd = cmd
		go func() { cmd.Wait(); close(g.done) }()
	}
	return nil
}

// waitShown polls one govc query of every VM until each shows tools
// running and its guest's address; it returns the time since start and
// the number of queries.
func (s *fleetScene) waitShown(ctx context.Context, govc, url string, start time.Time, limit time.Duration) (time.Duration, int, error) {
	want := map[string]string{}
	for _, g := range s.guests {
		want[g.vm.Name] = g.ip
	}
	var bad []string
	for q := 1; ; q++ {
		got, err := govcFleet(ctx, govc, url)
		if err != nil {
			return 0, q, err
		}
		bad = bad[:0]
		for name, ip := range want {
			if vm := got[name]; vm.tools != "guestToolsRunning" || vm.ip != ip {
				bad = append(bad, fmt.Sprintf("%s %s %q", name, vm.tools, vm.ip))
			}
		}
		if len(bad) == 0 {
			return time.Since(start), q, nil
		}
		for _, g := range s.guests {
			select {
			case <-g.done:
				return 0, q, fmt.Errorf("vmtoolsd in %s exited", g.ns)
			default:
			}
		}
		if time.Since(start) > limit {
			slices.Sort(bad)
			return 0, q, fmt.Errorf("after %v, %d VMs not shown right, e.g. %v", limit, len(bad), bad[:min(3, len(bad))])
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return 0, q, err
		}
	}
}

type govcVM struct{ tools, ip string }

// govcFleet is one `govc object.collect -json -type m /` of every VM's
// name, tools running status and guest.ipAddress, keyed by name.
func govcFleet(ctx context.Context, govc, url string) (map[string]govcVM, error) {
	cmd := exec.CommandContext(ctx, govc, "object.collect", "-json", "-type", "m", "/", "name", "guest.toolsRunningStatus", "guest.ipAddress")
	cmd.Env = append(os.Environ(), "GOVC_URL="+url, "GOVC_INSECURE=1")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("govc object.collect: %w", err)
	}
	objs, err := testutil.GovcCollected(out)
	if err != nil {
		return nil, err
	}
	got := map[string]govcVM{}
	for _, o := range objs {
		var vm govcVM
		name, _ := o["name"].(string)
		vm.tools, _ = o["guest.toolsRunningStatus"].(string)
		vm.ip, _ = o["guest.ipAddress"].(string)
		got[name] = vm
	}
	return got, nil
}

// rss is the median and the largest VmRSS (kB) of the guests' vmtoolsd.
func (s *fleetScene) rss() (med, most int64, err error) {
	var all []int64
	for _, g := range s.guests {
		kb, err := rss(g.cmd.Process.Pid)
		if err != nil {
			return 0, 0, fmt.Errorf("vmtoolsd in %s: %w", g.ns, err)
		}
		all = append(all, kb)
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)-1], nil
}

// fleetIdleFigures are per guest per second, and vmxsim's CPU seconds.
type fleetIdleFigures struct {
	rpci, commands, replies float64
	cpu                     float64
	window                  time.Duration
}

// fleetCounters is the part of a VM's `ctl state` the idle figures read.
type fleetCounters struct {
	Transports map[string]struct {
		RPCI uint64 `json:"rpci"`
	} `json:"transports"`
	TCLO *struct {
		Commands uint64 `json:"commands"`
		Replies  uint64 `json:"replies"`
	} `json:"tclo"`
}

// counters sums every VM's counters.
func (s *fleetScene) counters(ctx context.Context, ctl *http.Client) (rpci, commands, replies uint64, err error) {
	for _, g := range s.guests {
		var c fleetCounters
		if err := getJSON(ctx, ctl, "http://"+filepath.Base(g.vm.Dir)+"/state", &c); err != nil {
			return 0, 0, 0, fmt.Errorf("%s ctl state: %w", g.vm.Dir, err)
		}
		if c.TCLO == nil {
			return 0, 0, 0, errors.New("ctl state has no tclo counters")
		}
		rpci += c.Transports["unix"].RPCI
		commands += c.TCLO.Commands
		replies += c.TCLO.Replies
	}
	return rpci, commands, replies, nil
}

// idle measures the counters and vmxsim's CPU over window.
func (s *fleetScene) idle(ctx context.Context, ctl *http.Client, pid int, window time.Duration) (fleetIdleFigures, error) {
	r0, c0, a0, err := s.counters(ctx, ctl)
	if err != nil {
		return fleetIdleFigures{}, err
	}
	cpu0, _ := cpuTime(pid)
	t0 := time.Now()
	if err := sleep(ctx, window); err != nil {
		return fleetIdleFigures{}, err
	}
	cpu1, _ := cpuTime(pid)
	el := time.Since(t0)
	r1, c1, a1, err := s.counters(ctx, ctl)
	if err != nil {
		return fleetIdleFigures{}, err
	}
	per := float64(len(s.guests)) * el.Seconds()
	return fleetIdleFigures{rpci: float64(r1-r0) / per, commands: float64(c1-c0) / per, replies: float64(a1-a0) / per, cpu: cpu1 - cpu0, window: el}, nil
}

// cleanup stops every vmtoolsd the scene started (SIGTERM, SIGKILL after
// 15 s) and deletes every namespace it asked for.
func (s *fleetScene) cleanup() {
	for _, g := range s.guests {
		if g.cmd != nil {
			g.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	limit := time.Now().Add(15 * time.Second)
	for _, g := range s.guests {
		if g.cmd == nil {
			continue
		}
		select {
		case <-g.done:
		case <-time.After(time.Until(limit)):
			g.cmd.Process.Kill()
			<-g.done
		}
	}
	if len(s.made) == 0 {
		return
	}
	var del []string
	for _, name := range s.made {
		del = append(del, "netns del "+name)
	}
	// -force: go on past a namespace that was never made.
	if err := ipBatch([]string{"-force"}, del); err != nil {
		fmt.Fprintln(os.Stderr, "bench: fleet cleanup:", err)
	}
}
