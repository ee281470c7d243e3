package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/guestinfo/infoproto"
	"github.com/govmtools/govmtools/internal/netnstest"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/vishvananda/netns"
)

// benchGuestInfo measures guest info in the container-host namespace
// scene of the e2e tests, ours (vmtoolsd over unix:DIR, run inside the
// namespace) beside Debian's open-vm-tools vmtoolsd (its guestInfo plugin
// alone, under the ptrace trap, inside the same namespace):
//
//   - latency: from `ip addr add` inside the namespace to the address in
//     `vmxsim ctl state`. Ours: median of 20 changes. Debian's polls every
//     30 s (its default), so its latency is the time to its next poll:
//     three changes, made 5, 15 and 25 s after a poll (so the run stays
//     near two minutes), median reported and all three listed;
//   - CPU per poll of the whole daemon (every thread, from
//     /proc/PID/task/*/schedstat), with poll-interval=2 for both, median
//     of 4 polls, with the scene's few interfaces and with 1,000 more;
//     and which NICs each reports with the 1,000;
//   - CPU per NIC gather in process (netlink dump, ranking, XDR encode),
//     ours only, mean of 50, the figure the < 50 ms target is about.
func benchGuestInfo(ctx context.Context, e *env) ([]row, error) {
	if ok, what := netnstest.Available(); !ok {
		return nil, fmt.Errorf("needs %s", what)
	}
	scene, err := netnstest.NewScene(fmt.Sprintf("gibench%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer scene.Delete()
	peer := peerRoot()

	// Debian's first gather comes 30 s after it starts: start it now,
	// beside ours, and measure ours meanwhile.
	var deb *giDaemon
	if peer != "" {
		if deb, err = e.startDebianGuestInfo(ctx, scene.VM, peer, ""); err != nil {
			return nil, err
		}
		defer deb.stop()
	}
	ours, err := e.startOurGuestInfo(ctx, scene.VM, "")
	if err != nil {
		return nil, err
	}
	defer ours.stop()
	if _, err := ours.waitIP(ctx, netnstest.SceneIPv4, 20*time.Second, 2*time.Millisecond); err != nil {
		return nil, fmt.Errorf("ours: %w", err)
	}
	var lat []time.Duration
	for i := range 20 {
		ip := fmt.Sprintf("198.51.100.%d/24", 20+i)
		start := time.Now()
		if err := scene.VM.IP("addr", "add", ip, "dev", "eth0"); err != nil {
			return nil, err
		}
		if _, err := ours.waitIP(ctx, ip, 10*time.Second, 2*time.Millisecond); err != nil {
			return nil, fmt.Errorf("ours: %w", err)
		}
		lat = append(lat, time.Since(start))
	}
	ours.stop()

	latRef := "— (peer unavailable: make test-deps as root)"
	if deb != nil {
		// Wait for a poll (the first one, 30 s after start).
		if _, err := deb.waitIP(ctx, "198.51.100.39/24", 60*time.Second, 10*time.Millisecond); err != nil {
			return nil, fmt.Errorf("Debian's vmtoolsd: %w", err)
		}
		var dl []time.Duration
		for i, after := range []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second} {
			if err := sleep(ctx, after); err != nil {
				return nil, err
			}
			ip := fmt.Sprintf("198.51.100.%d/24", 60+i)
			start := time.Now()
			if err := scene.VM.IP("addr", "add", ip, "dev", "eth0"); err != nil {
				return nil, err
			}
			if _, err := deb.waitIP(ctx, ip, 45*time.Second, 10*time.Millisecond); err != nil {
				return nil, fmt.Errorf("Debian's vmtoolsd: %w", err)
			}
			dl = append(dl, time.Since(start))
		}
		deb.stop()
		var each []string
		for _, d := range dl {
			each = append(each, fmt.Sprintf("%.1f s", d.Seconds()))
		}
		latRef = fmt.Sprintf("%.1f s (Debian's vmtoolsd, median of 3: %s)", median(dl).Seconds(), strings.Join(each, ", "))
	}

	// CPU per poll: both daemons with poll-interval=2, first with the
	// scene's interfaces, then with 1,000 more.
	const poll = "[guestinfo]\npoll-interval=2\n"
	ours, err = e.startOurGuestInfo(ctx, scene.VM, poll)
	if err != nil {
		return nil, err
	}
	defer ours.stop()
	daemons := []*giDaemon{ours}
	if peer != "" {
		if deb, err = e.startDebianGuestInfo(ctx, scene.VM, peer, poll); err != nil {
			return nil, err
		}
		defer deb.stop()
		daemons = append(daemons, deb)
	}
	for _, d := range daemons {
		if _, err := d.waitIP(ctx, netnstest.SceneIPv4, 30*time.Second, 20*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
	}
	const polls = 4
	few := make([]time.Duration, len(daemons))
	many := make([]time.Duration, len(daemons))
	measure := func(out []time.Duration) error {
		errs := make(chan error, len(daemons))
		for i, d := range daemons {
			go func() {
				var err error
				out[i], err = d.cpuPerPoll(ctx, polls)
				errs <- err
			}()
		}
		var all error
		for range daemons {
			all = errors.Join(all, <-errs)
		}
		return all
	}
	fewLinks, err := countLinks(scene.VM)
	if err != nil {
		return nil, err
	}
	if err := measure(few); err != nil {
		return nil, err
	}
	if err := scene.AddInterfaces(1000); err != nil {
		return nil, err
	}
	manyLinks, err := countLinks(scene.VM)
	if err != nil {
		return nil, err
	}
	// Let the storm of link events settle and every daemon see the 1,000.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	if err := measure(many); err != nil {
		return nil, err
	}
	nics := make([]int, len(daemons))
	for i, d := range daemons {
		st, err := d.state(ctx)
		if err != nil {
			return nil, err
		}
		nics[i] = len(st.Guest.NICs)
		if len(st.Guest.NICs) == 0 || st.Guest.NICs[0].MAC != netnstest.SceneMAC {
			return nil, fmt.Errorf("%s: the first NIC is not eth0 with 1,000 interfaces: %+v", d.name, st.Guest.NICs)
		}
	}
	if nics[0] != 1 {
		return nil, fmt.Errorf("ours reports %d NICs with 1,000 interfaces, want eth0 alone", nics[0])
	}
	ours.stop()
	if len(daemons) > 1 {
		deb.stop()
	}

	perGather, names, err := inProcessGather(scene)
	if err != nil {
		return nil, err
	}

	cpuRef, nicRef, cpuNote := "— (peer unavailable)", "—", ""
	if len(daemons) > 1 {
		cpuRef = millis(many[1]) + " (Debian's vmtoolsd)"
		nicRef = fmt.Sprintf("%d: eth0 and %d container interfaces, of %d", nics[1], nics[1]-1, manyLinks)
		cpuNote = fmt.Sprintf("; Debian's %s with the scene's %d interfaces", millis(few[1]), fewLinks)
	}
	return []row{
		{"Guest info: address added in the guest → shown in `ctl state` (ours median of 20)", millis(median(lat)), latRef,
			"ours: vmtoolsd in the namespace, netlink event, 200 ms debounce, SetGuestInfo V3 over unix:DIR; Debian's: default 30 s poll, under the trap, changes made 5/15/25 s after a poll (expected median: half the poll period)"},
		{"Guest info: CPU per poll of the whole daemon, 1,000 interfaces (median of 4 polls)", millis(many[0]), cpuRef,
			fmt.Sprintf("poll-interval=2 for both, all threads (/proc/PID/task/*/schedstat) from one poll to the next: full gather, sends, pings; ours %s with the scene's %d interfaces%s", millis(few[0]), fewLinks, cpuNote)},
		{"Guest info: CPU per NIC gather in process, 1,000 interfaces", millis(perGather), "—",
			fmt.Sprintf("netlink dump + ranking + XDR encode, mean of 50; reported NICs: %v; target < 50 ms", names)},
		{"Guest info: NICs reported with 1,000 container interfaces", fmt.Sprintf("%d: eth0", nics[0]), nicRef,
			"kernel facts (veth, bridge) vs. name globs: the interfaces are named ve0000…, br0004…, outside open-vm-tools' default exclude-nics"},
	}, nil
}

// countLinks counts the network interfaces of the namespace, as
// `ip -o link show` lists them (loopback included).
func countLinks(ns *netnstest.NS) (int, error) {
	out, err := ns.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return 0, fmt.Errorf("ip link show in %s: %w", ns.Name, err)
	}
	n := strings.Count(string(out), "\n")
	if n == 0 {
		return 0, fmt.Errorf("ip link show in %s: no interfaces", ns.Name)
	}
	return n, nil
}

// inProcessGather times the NIC gather as vmtoolsd runs it, in this
// process, watching the namespace.
func inProcessGather(scene *netnstest.Scene) (time.Duration, []string, error) {
	h, err := netns.GetFromPath(scene.VM.Path())
	if err != nil {
		return 0, nil, err
	}
	defer h.Close()
	nl := &guestinfo.Netlink{NS: h}
	defer nl.Close()
	cfg := guestinfo.DefaultConfig()
	const gathers = 50
	var names []string
	c0 := selfCPUTime()
	for range gathers {
		snap, err := nl.Snapshot()
		if err != nil {
			return 0, nil, err
		}
		res := guestinfo.BuildNicInfo(snap, &cfg, nil)
		if _, err := infoproto.EncodeNicInfo(res.Info); err != nil {
			return 0, nil, err
		}
		names = res.Names
	}
	perGather := (selfCPUTime() - c0) / gathers
	if !slices.Equal(names, []string{"eth0"}) {
		return 0, nil, fmt.Errorf("with 1,000 interfaces the reported NICs are %v, want [eth0]", names)
	}
	return perGather, names, nil
}

// giDaemon is a guest-info daemon running in the namespace against its
// own simulator.
type giDaemon struct {
	name     string
	done     <-chan struct{} // closed once the process started has exited
	hardKill func()          // kills that process
	pid      func() int      // the daemon's pid (0 while unknown)
	ctl      *http.Client
	kill     func() // asks the daemon to stop
	after    func() // runs once it has (nil: nothing)
	stopped  bool
}

func (d *giDaemon) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	d.kill()
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.hardKill()
		<-d.done
	}
	if d.after != nil {
		d.after()
	}
}

// startOurGuestInfo runs our vmtoolsd inside ns (`ip netns exec` execs
// it) against a new `vmxsim serve`, with conf as tools.conf ("" for none).
func (e *env) startOurGuestInfo(ctx context.Context, ns *netnstest.NS, conf string) (*giDaemon, error) {
	s, err := e.startSim(ctx)
	if err != nil {
		return nil, err
	}
	confDir, err := os.MkdirTemp(e.scratch, "conf-")
	if err != nil {
		s.stop()
		return nil, err
	}
	if conf != "" {
		os.WriteFile(filepath.Join(confDir, "tools.conf"), []byte(conf), 0o644)
	}
	cmd := ns.Command(filepath.Join(e.bin, "vmtoolsd"), "--rpc", "unix:"+s.dir, "--conf-dir", confDir,
		"--power-runner", "record:"+filepath.Join(confDir, "power.record"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOVMTOOLS_SIMULATED=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.stop()
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d := &giDaemon{name: "govmtools vmtoolsd", done: done, hardKill: func() { cmd.Process.Kill() }, ctl: ctlClient(s.dir), after: s.stop}
	d.pid = func() int { return cmd.Process.Pid }
	d.kill = func() { cmd.Process.Signal(syscall.SIGTERM) }
	return d, nil
}

// startDebianGuestInfo runs Debian's vmtoolsd, with its guestInfo plugin
// alone (no power operations, no time sync), under `vmxsim run` inside ns
// (`ip netns exec NS vmxsim run -- sh -c '... exec vmtoolsd'`).
func (e *env) startDebianGuestInfo(ctx context.Context, ns *netnstest.NS, peer, conf string) (*giDaemon, error) {
	dir, err := os.MkdirTemp(e.scratch, "trap-")
	if err != nil {
		return nil, err
	}
	lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
	plugins := filepath.Join(dir, "plugins")
	os.MkdirAll(plugins, 0o755)
	if err := os.Symlink(filepath.Join(lib, "open-vm-tools/plugins/vmsvc/libguestInfo.so"), filepath.Join(plugins, "libguestInfo.so")); err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "tools.conf")
	os.WriteFile(confPath, []byte(conf+"[logging]\nlog=false\n"), 0o644)
	pidFile := filepath.Join(dir, "pid")
	sim := filepath.Join(dir, "sim")
	script := fmt.Sprintf("echo $$ > %s; exec env LD_LIBRARY_PATH=%s HOME=%s %s -c %s -p %s --common-path %s",
		pidFile, lib, dir, filepath.Join(peer, "usr/bin/vmtoolsd"), confPath, plugins, filepath.Join(lib, "open-vm-tools/plugins/common"))
	cmd := ns.Command(filepath.Join(e.bin, "vmxsim"), "run", "--dir", sim, "--log-level", "warn", "--", "/bin/sh", "-c", script)
	cmd.Stderr = os.Stderr
	pid := func() int {
		b, _ := os.ReadFile(pidFile)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	proc, err := testutil.LaunchSim(cmd, sim, 5*time.Second, func() bool { return pid() > 0 })
	if err != nil {
		return nil, fmt.Errorf("vmxsim run with Debian's vmtoolsd did not start: %w", err)
	}
	d := &giDaemon{name: "Debian's vmtoolsd", done: proc.Done(), hardKill: func() { cmd.Process.Kill() }, pid: pid, ctl: ctlClient(sim)}
	d.kill = func() {
		if p := d.pid(); p > 0 {
			syscall.Kill(p, syscall.SIGTERM) // vmxsim run ends with its child
		} else {
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	return d, nil
}

// giState is the part of `ctl state` the guest-info benchmark reads.
type giState struct {
	Guest struct {
		NICs []struct {
			MAC string   `json:"mac"`
			IPs []string `json:"ips"`
		} `json:"nics"`
		Uptime int64 `json:"uptime"`
	} `json:"guest"`
}

func (d *giDaemon) state(ctx context.Context) (giState, error) {
	var st giState
	return st, d.decodeState(ctx, &st)
}

// decodeState reads `ctl state` into v, a struct holding the fields a
// scene looks at.
func (d *giDaemon) decodeState(ctx context.Context, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vmxsim/state", nil)
	if err != nil {
		return err
	}
	resp, err := d.ctl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitIP polls `ctl state` every `every` until eth0 shows ip.
func (d *giDaemon) waitIP(ctx context.Context, ip string, limit, every time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		st, err := d.state(ctx)
		if err != nil {
			return 0, err
		}
		for _, n := range st.Guest.NICs {
			if n.MAC == netnstest.SceneMAC && slices.Contains(n.IPs, ip) {
				return time.Since(start), nil
			}
		}
		if err := sleep(ctx, every); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s not reported within %v", ip, limit)
}

// cpuPerPoll returns the median CPU time the daemon used from one poll to
// the next over n polls. A poll is seen as a new uptime in `ctl state`:
// both daemons send it at every gather.
func (d *giDaemon) cpuPerPoll(ctx context.Context, n int) (time.Duration, error) {
	var last int64 = -1
	var lastCPU time.Duration
	var deltas []time.Duration
	deadline := time.Now().Add(time.Duration(n+3) * 5 * time.Second)
	for len(deltas) < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: %d polls seen, want %d", d.name, len(deltas), n)
		}
		st, err := d.state(ctx)
		if err != nil {
			return 0, err
		}
		if up := st.Guest.Uptime; up != last {
			cpu, err := schedCPU(d.pid())
			if err != nil {
				return 0, err
			}
			if last >= 0 {
				deltas = append(deltas, cpu-lastCPU)
			}
			last, lastCPU = up, cpu
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return median(deltas), nil
}

// schedCPU is the CPU time of every thread of pid (the first field of
// /proc/PID/task/TID/schedstat, in nanoseconds).
func schedCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no pid")
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d", pid)
	}
	var sum time.Duration
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		sum += time.Duration(ns)
	}
	return sum, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// selfCPUTime is the process's user+system CPU time.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ctlClient reaches DIR/ctl.sock. The harness does not import vmxsim (the
// guest side never does); it reads `ctl state` as any client would.
func ctlClient(dir string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(dir, "ctl.sock"))
		},
	}}
}
