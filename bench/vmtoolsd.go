package main

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/govmtools/govmtools/internal/testutil"
)

// A toolsDaemon is a vmtoolsd implementation the bench runs against the
// simulated VMX under the same conditions: ours over unix:DIR (vmxsim
// serve), and, under the ptrace trap (`vmxsim run`, the backdoor path),
// ours and Debian's open-vm-tools vmtoolsd side by side.
type toolsDaemon struct {
	name string
	ours bool
	// start launches the daemon against a fresh simulator.
	start func(ctx context.Context, e *env) (*daemonRun, error)
}

// daemonRun is one running daemon.
type daemonRun struct {
	dir   string    // the simulator's directory (ctl.sock)
	pid   int       // the daemon's process
	began time.Time // when its process started
	stop  func()    // stops the daemon and its simulator
}

// toolsDaemons are measured in order; the ones marked ours fill the
// govmtools column, the others the reference column. Under the trap each
// runs twice: with --no-vsock (socket(AF_VSOCK) fails, everything crosses
// the backdoor) and with the vsock trap (TCLO and RPCI over vsock, as on
// current ESXi; the backdoor only detects VMware).
func toolsDaemons() []toolsDaemon {
	ds := []toolsDaemon{{name: "over unix:DIR", ours: true, start: ourVmtoolsdUnix}}
	peer := peerRoot()
	for _, path := range []struct {
		name string
		args []string
	}{{"backdoor", []string{"--no-vsock"}}, {"vsock", nil}} {
		vargs := path.args
		ds = append(ds, toolsDaemon{name: "under the trap, " + path.name, ours: true, start: func(ctx context.Context, e *env) (*daemonRun, error) {
			conf, err := os.MkdirTemp(e.scratch, "conf-")
			if err != nil {
				return nil, err
			}
			return e.trapDaemon(ctx, vargs, nil, filepath.Join(e.bin, "vmtoolsd"), "--conf-dir", conf,
				"--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "warn")
		}})
		if peer == "" {
			continue
		}
		lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
		ds = append(ds, toolsDaemon{name: "Debian's open-vm-tools 12.2.0 vmtoolsd, all its vmsvc plugins, under the trap, " + path.name, start: func(ctx context.Context, e *env) (*daemonRun, error) {
			work, err := os.MkdirTemp(e.scratch, "peer-")
			if err != nil {
				return nil, err
			}
			conf := filepath.Join(work, "tools.conf")
			// Warnings and errors to a file, as ours logs at warn.
			if err := os.WriteFile(conf, []byte("[logging]\nlog = true\nvmsvc.level = warning\nvmsvc.handler = file\nvmsvc.data = "+work+"/vmsvc.log\n"), 0o644); err != nil {
				return nil, err
			}
			return e.trapDaemon(ctx, vargs, []string{"LD_LIBRARY_PATH=" + lib, "HOME=" + work},
				filepath.Join(peer, "usr/bin/vmtoolsd"), "-c", conf,
				"-p", filepath.Join(lib, "open-vm-tools/plugins/vmsvc"), "--common-path", filepath.Join(lib, "open-vm-tools/plugins/common"))
		}})
	}
	return ds
}

func ourVmtoolsdUnix(ctx context.Context, e *env) (*daemonRun, error) {
	s, err := e.startSim(ctx)
	if err != nil {
		return nil, err
	}
	conf, err := os.MkdirTemp(e.scratch, "conf-")
	if err != nil {
		s.stop()
		return nil, err
	}
	cmd := exec.Command(filepath.Join(e.bin, "vmtoolsd"), "--rpc", "unix:"+s.dir, "--conf-dir", conf,
		"--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOVMTOOLS_SIMULATED=1")
	began := time.Now()
	if err := cmd.Start(); err != nil {
		s.stop()
		return nil, err
	}
	return &daemonRun{dir: s.dir, pid: cmd.Process.Pid, began: began, stop: func() { stopProcess(cmd); s.stop() }}, nil
}

// trapDaemon runs path under `vmxsim run` with vmxsim's flags vargs. The
// trapped program is first a shell waiting for a line on stdin, so that
// the clock starts when the simulator is up and the shell execs the daemon
// (the same process: its pid is vmxsim's child).
func (e *env) trapDaemon(ctx context.Context, vargs, extraEnv []string, path string, args ...string) (*daemonRun, error) {
	dir, err := os.MkdirTemp(e.scratch, "trap-")
	if err != nil {
		return nil, err
	}
	argv := append(append([]string{"run", "--dir", dir, "--log-level", "warn"}, vargs...), "--", "/bin/sh", "-c", `read go && exec "$@"`, "sh", path)
	argv = append(argv, args...)
	cmd := exec.Command(filepath.Join(e.bin, "vmxsim"), argv...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	var pid int
	proc, err := testutil.LaunchSim(cmd, dir, 5*time.Second, func() bool { pid = childOf(cmd.Process.Pid); return pid != 0 })
	if err != nil {
		return nil, fmt.Errorf("vmxsim run did not start its program: %w", err)
	}
	stop := func() {
		in.Close()
		proc.Stop(syscall.SIGTERM, 5*time.Second) // vmxsim sends SIGTERM to the program and waits for it
	}
	began := time.Now()
	if _, err := in.Write([]byte("go\n")); err != nil {
		stop()
		return nil, err
	}
	return &daemonRun{dir: dir, pid: pid, began: began, stop: stop}, nil
}

// childOf returns a child process of pid (any of its threads may have
// forked it), or 0.
func childOf(pid int) int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			n, _ := strconv.Atoi(fs[0])
			return n
		}
	}
	return 0
}

// idleWindow is how long the daemon sits idle before and while its
// resources are measured.
var idleWindow = 60 * time.Second

// daemonFigures are one daemon's measurements.
type daemonFigures struct {
	startToRunning time.Duration // median
	rssKiB         int64
	cpuSeconds     float64
	wakeupsPerSec  float64
	bdCallsPerSec  float64 // backdoor calls the VMX served, under the trap
	trapped        bool
}

// benchVmtoolsd measures start-to-tools-running (median of 5 starts) and,
// over a 60 s idle window after the tools are running, CPU time, wake-ups
// (context switches of all threads) and the resident set at the end, for
// ours over unix:DIR and under the trap, and for Debian's vmtoolsd under
// the same trap.
func benchVmtoolsd(ctx context.Context, e *env) ([]row, error) {
	type result struct {
		d toolsDaemon
		f daemonFigures
	}
	var res []result
	for _, d := range toolsDaemons() {
		f, err := measureDaemon(ctx, e, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		res = append(res, result{d, f})
	}
	col := func(ours bool, get func(daemonFigures) string) string {
		var parts []string
		for _, r := range res {
			if r.d.ours == ours && get(r.f) != "" {
				parts = append(parts, get(r.f)+" ("+r.d.name+")")
			}
		}
		if len(parts) == 0 {
			return "— (Debian's open-vm-tools unavailable: make test-deps as root)"
		}
		return strings.Join(parts, "; ")
	}
	r := func(what string, get func(daemonFigures) string, notes string) row {
		return row{what, col(true, get), col(false, get), notes}
	}
	win := fmt.Sprintf("%.0f s", idleWindow.Seconds())
	return []row{
		r("vmtoolsd: process start to tools running (median of 5)", func(f daemonFigures) string { return millis(f.startToRunning) },
			"`ctl state` shows running, version type 4 and the statechange capability; under the trap every backdoor call and cpuid costs a ptrace stop (~20 µs)"),
		r("vmtoolsd: RSS after "+win+" idle", func(f daemonFigures) string { return fmt.Sprintf("%.1f MiB", float64(f.rssKiB)/1024) },
			"VmRSS; open-vm-tools ~5.4 MB at boot, ~20 MB steady (open-vm-tools#452, #219)"),
		r("vmtoolsd: CPU time over "+win+" idle", func(f daemonFigures) string { return fmt.Sprintf("%.3f s", f.cpuSeconds) },
			"utime+stime from /proc/PID/stat (the daemon's own; the trap's work is vmxsim's); the VMX pings every 1 s"),
		r("vmtoolsd: wake-ups per second, idle", func(f daemonFigures) string { return fmt.Sprintf("%.1f", f.wakeupsPerSec) },
			"context switches of all threads (/proc/PID/task/*/status); the backdoor is polled every 100 ms when idle (rpcin.c) and each trapped call adds a ptrace stop, which VMware does not have (see below); over vsock nothing polls: the TCLO socket wakes for the VMX's 1 s ping"),
		r("vmtoolsd: backdoor calls per second, idle", func(f daemonFigures) string {
			if !f.trapped {
				return ""
			}
			return fmt.Sprintf("%.1f", f.bdCallsPerSec)
		}, "LB + HB calls counted by vmxsim over the idle window: the work each asks of the VMX, the same on VMware; 0 over vsock, where TCLO and RPCI are sockets"),
	}, nil
}

func measureDaemon(ctx context.Context, e *env, d toolsDaemon) (daemonFigures, error) {
	var f daemonFigures
	// Each start gets a fresh simulator, so that nothing a previous run
	// registered can make the tools look running early.
	var starts []time.Duration
	var last *daemonRun
	for i := range 5 {
		run, err := d.start(ctx, e)
		if err != nil {
			return f, err
		}
		if err := waitRunning(ctx, newSimCtl(run.dir), 30*time.Second); err != nil {
			run.stop()
			return f, err
		}
		starts = append(starts, time.Since(run.began))
		if i < 4 {
			run.stop()
			continue
		}
		last = run
	}
	defer last.stop()
	f.startToRunning = median(starts)
	ctl := newSimCtl(last.dir)

	pid := last.pid
	st0, err := ctl.State(ctx)
	if err != nil {
		return f, err
	}
	cpu0, err := cpuTime(pid)
	if err != nil {
		return f, err
	}
	sw0, err := contextSwitches(pid)
	if err != nil {
		return f, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(idleWindow):
	}
	elapsed := time.Since(t0).Seconds()
	cpu1, err := cpuTime(pid)
	if err != nil {
		return f, err
	}
	sw1, err := contextSwitches(pid)
	if err != nil {
		return f, err
	}
	if f.rssKiB, err = rss(pid); err != nil {
		return f, err
	}
	st, err := ctl.State(ctx)
	if err != nil || !st.Tools.Running || st.Tools.Heartbeat != "green" {
		return f, fmt.Errorf("tools not running and green after the idle window: %+v %v", st.Tools, err)
	}
	f.cpuSeconds = cpu1 - cpu0
	f.wakeupsPerSec = float64(sw1-sw0) / elapsed
	if st.Backdoor != nil {
		f.trapped = true
		f.bdCallsPerSec = float64(st.Backdoor.calls()-st0.Backdoor.calls()) / elapsed
	}
	return f, nil
}

func waitRunning(ctx context.Context, ctl *simCtl, timeout time.Duration) error {
	return waitTools(ctx, ctl, timeout, "running with its version and the statechange capability", func(st simState) bool {
		return st.Tools.Running && st.Tools.VersionType != "" && slices.Contains(st.Capabilities, "tools.capability.statechange ")
	})
}

// waitTools waits until the host's state satisfies ready; the error
// says what was awaited and what the host saw last.
func waitTools(ctx context.Context, ctl *simCtl, timeout time.Duration, what string, ready func(simState) bool) error {
	deadline := time.Now().Add(timeout)
	var last simState
	var lastErr error
	for time.Now().Before(deadline) {
		st, err := ctl.State(ctx)
		if err == nil && ready(st) {
			return nil
		}
		last, lastErr = st, err
		time.Sleep(2 * time.Millisecond)
	}
	if lastErr != nil {
		return fmt.Errorf("tools not %s in %v: %w", what, timeout, lastErr)
	}
	return fmt.Errorf("tools not %s in %v (running %v, version type %q, %d capabilities)", what, timeout, last.Tools.Running, last.Tools.VersionType, len(last.Capabilities))
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// cpuTime returns utime+stime of pid in seconds.
func cpuTime(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesized command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return float64(ut+st) / 100, nil // USER_HZ is 100 on Linux
}

// contextSwitches sums voluntary and involuntary switches of every thread.
func contextSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no tasks for pid %d", pid)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				total += n
			}
		}
	}
	return total, nil
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// simCtl reads a simulator's state over DIR/ctl.sock. The bench talks to
// vmxsim only on the wire, as the guest side does (it may not import
// vmxsim).
type simCtl struct{ hc *http.Client }

// simState is the part of `vmxsim ctl state` the bench reads.
type simState struct {
	Tools struct {
		Running     bool   `json:"running"`
		VersionType string `json:"versionType"`
		Heartbeat   string `json:"heartbeat"`
	} `json:"tools"`
	Capabilities []string `json:"capabilities"`
	// Backdoor is present under `vmxsim run`.
	Backdoor *bdCounters `json:"backdoor"`
}

type bdCounters struct {
	LB    uint64 `json:"lb"`
	HBIn  uint64 `json:"hbIn"`
	HBOut uint64 `json:"hbOut"`
}

func (b *bdCounters) calls() uint64 {
	if b == nil {
		return 0
	}
	return b.LB + b.HBIn + b.HBOut
}

func newSimCtl(dir string) *simCtl {
	path := filepath.Join(dir, "ctl.sock")
	return &simCtl{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *simCtl) State(ctx context.Context) (simState, error) {
	var s simState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vmxsim/state", nil)
	if err != nil {
		return s, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}
