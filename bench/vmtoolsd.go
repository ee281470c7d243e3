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
)

// A toolsDaemon is a vmtoolsd implementation the bench runs against the
// simulated VMX under the same conditions. Ours runs over unix:DIR now;
// Debian's open-vm-tools vmtoolsd joins (and ours is re-run beside it)
// under the ptrace trap, `vmxsim run`, by adding an entry to
// toolsDaemons whose command wraps the binary in the trap.
type toolsDaemon struct {
	name string
	// command returns the daemon's command line for a simulator in dir.
	command func(e *env, dir string) (*exec.Cmd, error)
}

// toolsDaemons are measured in order; the first is ours, the others fill
// the reference column.
var toolsDaemons = []toolsDaemon{
	{name: "govmtools vmtoolsd, unix:DIR", command: ourVmtoolsd},
}

func ourVmtoolsd(e *env, dir string) (*exec.Cmd, error) {
	conf, err := os.MkdirTemp(e.scratch, "conf-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(e.bin, "vmtoolsd"), "--rpc", "unix:"+dir, "--conf-dir", conf,
		"--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "GOVMTOOLS_SIMULATED=1")
	return cmd, nil
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
}

// benchVmtoolsd measures start-to-tools-running (median of 5 starts) and,
// over a 60 s idle window after the tools are running, CPU time, wake-ups
// (context switches of all threads) and the resident set at the end.
func benchVmtoolsd(ctx context.Context, e *env) ([]row, error) {
	var figs []daemonFigures
	for _, d := range toolsDaemons {
		f, err := measureDaemon(ctx, e, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		figs = append(figs, f)
	}
	ref := func(get func(daemonFigures) string) string {
		if len(figs) < 2 {
			return "— (Debian's vmtoolsd comes with the trap)"
		}
		var parts []string
		for i, f := range figs[1:] {
			parts = append(parts, get(f)+" ("+toolsDaemons[i+1].name+")")
		}
		return strings.Join(parts, "; ")
	}
	win := fmt.Sprintf("%.0f s", idleWindow.Seconds())
	return []row{
		{"vmtoolsd: process start to tools running (median of 5)", millis(figs[0].startToRunning),
			ref(func(f daemonFigures) string { return millis(f.startToRunning) }), "`ctl state` shows running, version type 4 and the statechange capability"},
		{"vmtoolsd: RSS after " + win + " idle", fmt.Sprintf("%.1f MiB", float64(figs[0].rssKiB)/1024),
			ref(func(f daemonFigures) string { return fmt.Sprintf("%.1f MiB", float64(f.rssKiB)/1024) }), "VmRSS; open-vm-tools ~5.4 MB at boot, ~20 MB steady (open-vm-tools#452, #219)"},
		{"vmtoolsd: CPU time over " + win + " idle", fmt.Sprintf("%.3f s", figs[0].cpuSeconds),
			ref(func(f daemonFigures) string { return fmt.Sprintf("%.3f s", f.cpuSeconds) }), "utime+stime from /proc/PID/stat; the VMX pings every 1 s"},
		{"vmtoolsd: wake-ups per second, idle", fmt.Sprintf("%.1f", figs[0].wakeupsPerSec),
			ref(func(f daemonFigures) string { return fmt.Sprintf("%.1f", f.wakeupsPerSec) }), "context switches of all threads (/proc/PID/task/*/status); backdoor polling costs ≥10/s (rpcin.c)"},
	}, nil
}

func measureDaemon(ctx context.Context, e *env, d toolsDaemon) (daemonFigures, error) {
	var f daemonFigures
	// Each start gets a fresh simulator, so that nothing a previous run
	// registered can make the tools look running early.
	var starts []time.Duration
	var last *exec.Cmd
	var ctl *simCtl
	for i := range 5 {
		s, err := e.startSim(ctx)
		if err != nil {
			return f, err
		}
		defer s.stop()
		ctl = newSimCtl(s.dir)
		cmd, err := d.command(e, s.dir)
		if err != nil {
			return f, err
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return f, err
		}
		if err := waitRunning(ctx, ctl, 10*time.Second); err != nil {
			stopProcess(cmd)
			return f, err
		}
		starts = append(starts, time.Since(start))
		if i < 4 {
			stopProcess(cmd)
			s.stop()
			continue
		}
		last = cmd
	}
	defer stopProcess(last)
	f.startToRunning = median(starts)

	pid := last.Process.Pid
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
	return f, nil
}

func waitRunning(ctx context.Context, ctl *simCtl, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := ctl.State(ctx)
		if err == nil && st.Tools.Running && st.Tools.VersionType != "" && slices.Contains(st.Capabilities, "tools.capability.statechange ") {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("tools not running in time")
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
