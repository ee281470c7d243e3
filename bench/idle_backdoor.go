package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The rows this file adds go after the table's others (registered here,
// not in main.go's list, so that parallel work on the bench does not
// collide).
func init() {
	benchmarks = append(benchmarks, benchmark{"idle-backdoor", benchIdleBackdoor})
}

// benchIdleBackdoor runs ours and Debian's vmtoolsd under the trap at the
// same time, each against its own simulator, and measures both over the
// same idle window, so that the shared machine's load falls on both
// alike. Wake-ups are split into voluntary context switches (the
// daemon's own sleeps and each trapped backdoor call's ptrace stop) and
// involuntary ones (preemption by other work on the machine); CPU time
// comes from /proc/PID/task/*/schedstat (nanoseconds), finer than the
// 10 ms ticks of /proc/PID/stat.
func benchIdleBackdoor(ctx context.Context, e *env) ([]row, error) {
	var trapped []toolsDaemon
	for _, d := range toolsDaemons() {
		// The backdoor path only: the vsock daemons would fill no cell
		// (each row shows the first of ours and of Debian's) and only load
		// the machine during the window.
		if strings.HasSuffix(d.name, "under the trap, backdoor") {
			trapped = append(trapped, d)
		}
	}
	type side struct {
		d        toolsDaemon
		run      *daemonRun
		ctl      *simCtl
		a, b     idleSample
		bd0, bd1 uint64
	}
	var sides []*side
	defer func() {
		for _, s := range sides {
			s.run.stop()
		}
	}()
	for _, d := range trapped {
		run, err := d.start(ctx, e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
		s := &side{d: d, run: run, ctl: newSimCtl(run.dir)}
		sides = append(sides, s)
		if err := waitRunning(ctx, s.ctl, 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
	}
	// Let start-up work (the first guest info, plugin set-up) finish.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	for _, s := range sides {
		st, err := s.ctl.State(ctx)
		if err != nil {
			return nil, err
		}
		s.bd0 = st.Backdoor.calls()
		if s.a, err = sampleIdle(s.run.pid); err != nil {
			return nil, fmt.Errorf("%s, before the window: %w", s.d.name, err)
		}
	}
	t0 := time.Now()
	if err := sleep(ctx, idleWindow); err != nil {
		return nil, err
	}
	el := time.Since(t0).Seconds()
	for _, s := range sides {
		var err error
		if s.b, err = sampleIdle(s.run.pid); err != nil {
			return nil, fmt.Errorf("%s, after the window: %w", s.d.name, err)
		}
		st, err := s.ctl.State(ctx)
		if err != nil || !st.Tools.Running || st.Tools.Heartbeat != "green" {
			return nil, fmt.Errorf("%s: tools not running and green after the idle window: %+v %v", s.d.name, st.Tools, err)
		}
		s.bd1 = st.Backdoor.calls()
	}
	cell := func(ours bool, f func(s *side) string) string {
		for _, s := range sides {
			if s.d.ours == ours {
				return f(s)
			}
		}
		return "— (Debian's open-vm-tools unavailable: make test-deps as root)"
	}
	r := func(what string, f func(s *side) string, notes string) row {
		return row{what, cell(true, f), cell(false, f), notes}
	}
	win := fmt.Sprintf("%.0f s", idleWindow.Seconds())
	return []row{
		r("vmtoolsd idle under the trap, side by side over "+win+": voluntary wake-ups per second", func(s *side) string {
			return fmt.Sprintf("%.1f", float64(s.b.vol-s.a.vol)/el)
		}, "both daemons run at once; voluntary context switches of all threads: the daemon's own wake-ups plus one ptrace stop per trapped backdoor call (which VMware does not have)"),
		r("vmtoolsd idle under the trap, side by side: involuntary switches per second", func(s *side) string {
			return fmt.Sprintf("%.1f", float64(s.b.invol-s.a.invol)/el)
		}, "preemption by the rest of the machine: noise, not the daemon's doing"),
		r("vmtoolsd idle under the trap, side by side: CPU per minute", func(s *side) string {
			return fmt.Sprintf("%.1f ms", float64(s.b.cpuNs-s.a.cpuNs)/1e6*60/el)
		}, "sum of /proc/PID/task/*/schedstat run time (the daemon's own; the trap's work is vmxsim's)"),
		r("vmtoolsd idle under the trap, side by side: backdoor calls per second", func(s *side) string {
			return fmt.Sprintf("%.1f", float64(s.bd1-s.bd0)/el)
		}, "the VMX-visible work: the same poll cadence and back-off (rpcin.c)"),
	}, nil
}

// idleSample is one reading of a process's threads.
type idleSample struct {
	vol, invol, cpuNs int64
}

func sampleIdle(pid int) (idleSample, error) {
	var s idleSample
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return s, fmt.Errorf("no tasks for pid %d", pid)
	}
	for _, t := range tasks {
		st, err := os.ReadFile(t + "/status")
		if err != nil {
			continue // a thread that just ended
		}
		for _, line := range strings.Split(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch {
			case ok && k == "voluntary_ctxt_switches":
				s.vol += n
			case ok && k == "nonvoluntary_ctxt_switches":
				s.invol += n
			}
		}
		if ss, err := os.ReadFile(t + "/schedstat"); err == nil {
			if f := strings.Fields(string(ss)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				s.cpuNs += n
			}
		}
	}
	return s, nil
}
