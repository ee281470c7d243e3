package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// trapRun runs a shell script under `vmxsim run` (optionally pinned to
// CPU 0 with taskset) and returns its stdout.
func (e *env) trapRun(ctx context.Context, pin bool, runArgs []string, script string) (string, error) {
	dir, err := os.MkdirTemp(e.scratch, "trap-")
	if err != nil {
		return "", err
	}
	return e.trapRunIn(ctx, dir, pin, runArgs, script)
}

// trapRunIn is trapRun with the simulator directory given, for a caller
// that reads its vmware.log afterwards.
func (e *env) trapRunIn(ctx context.Context, dir string, pin bool, runArgs []string, script string) (string, error) {
	// Every row run here measures the backdoor (the HB and LB paths,
	// the trap's cost, logship over the backdoor): no vsock, which ours
	// would take under the trap by default.
	argv := append([]string{filepath.Join(e.bin, "vmxsim"), "run", "--dir", dir, "--no-vsock"}, runArgs...)
	argv = append(argv, "--", "/bin/sh", "-c", script)
	if pin {
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+e.bin+":"+e.helpers+":"+os.Getenv("PATH"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("vmxsim run %q: %w", script, err)
	}
	return string(out), nil
}

// nsLine parses one integer line of bdprobe output as nanoseconds.
func nsLine(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return time.Duration(n), err
}

// benchTrapCost measures one trapped backdoor instruction (GETVERSION, an
// IN on the LB port) from inside the trap, unpinned and pinned to one CPU.
func benchTrapCost(ctx context.Context, e *env) ([]row, error) {
	var rows []row
	for _, pin := range []bool{false, true} {
		var best time.Duration
		for range 3 { // the machine is shared: keep the best of three
			out, err := e.trapRun(ctx, pin, nil, "bdprobe getversion 20000")
			if err != nil {
				return rows, err
			}
			d, err := nsLine(out)
			if err != nil {
				return rows, err
			}
			if best == 0 || d < best {
				best = d
			}
		}
		what := "Backdoor trap, one instruction (GETVERSION), unpinned (best of 3 × 20000)"
		if pin {
			what = "Backdoor trap, one instruction (GETVERSION), tracer and child pinned to one CPU"
		}
		rows = append(rows, row{what, micros(best), cited("13–17 µs pinned", "docs/architecture.md §4"), "ptrace stop, decode, emulate, resume; an HB RPCI round trip is 5 such traps, an LB one 5 + one per 4 bytes each way"})
	}
	return rows, nil
}

// peerRoot returns the unpacked Debian open-vm-tools, fetching it if
// needed, or "" when it cannot be had here.
func peerRoot() string {
	root := filepath.Join(".cache", "peer", "root")
	if _, err := os.Stat(filepath.Join(".cache", "peer", "ok")); err != nil {
		exec.Command("scripts/test-deps.d/20-peer.sh").Run()
	}
	if _, err := os.Stat(filepath.Join(".cache", "peer", "ok")); err != nil {
		return ""
	}
	abs, _ := filepath.Abs(root)
	return abs
}

type trapState struct {
	Backdoor struct {
		RPCIRoundTrips        uint64  `json:"rpciRoundTrips"`
		RPCIRoundTripMedianUs float64 `json:"rpciRoundTripMedianUs"`
		LB                    uint64  `json:"lb"`
		HBIn                  uint64  `json:"hbIn"`
		HBOut                 uint64  `json:"hbOut"`
		Opens                 uint64  `json:"opens"`
		Channels              int     `json:"channels"`
	} `json:"backdoor"`
}

// benchTrapRPCI measures, under the trap, the RPCI round trip of
// `info-get guestinfo.k` and the wall time of one vmware-rpctool
// invocation, for ours and for Debian's, on the HB and LB paths. The
// round trip is timed by the VMX (SENDSIZE to RECVSTATUS) so both
// implementations are measured alike; for ours the time seen by the guest
// on a persistent channel is given too.
func benchTrapRPCI(ctx context.Context, e *env) ([]row, error) {
	peer := peerRoot()
	const n = 100
	var rows []row
	for _, path := range []string{"hb", "lb"} {
		var args []string
		if path == "lb" {
			args = []string{"--lb"}
		}
		measure := func(rpctool, envPrefix string) (wall time.Duration, rtt float64, traps float64, err error) {
			script := fmt.Sprintf(`vmware-rpctool "info-set guestinfo.k v" >/dev/null &&
%s bdprobe exec %d %s "info-get guestinfo.k" &&
vmxsim ctl state`, envPrefix, n, rpctool)
			out, err := e.trapRun(ctx, false, args, script)
			if err != nil {
				return 0, 0, 0, err
			}
			first, rest, _ := strings.Cut(out, "\n")
			if wall, err = nsLine(first); err != nil {
				return 0, 0, 0, err
			}
			var st trapState
			if err := json.Unmarshal([]byte(rest), &st); err != nil {
				return 0, 0, 0, fmt.Errorf("ctl state: %w", err)
			}
			b := st.Backdoor
			if b.RPCIRoundTrips == 0 {
				// Nothing went over the backdoor: a median of nothing
				// would print as 0 µs and the calls per round trip as
				// +Inf. A failed measurement is an error.
				return 0, 0, 0, fmt.Errorf("%s: no RPCI round trip over the backdoor (ctl state: %d LB, %d HB calls)", rpctool, b.LB, b.HBIn+b.HBOut)
			}
			traps = float64(b.LB+b.HBIn+b.HBOut) / float64(b.RPCIRoundTrips)
			return wall, b.RPCIRoundTripMedianUs, traps, nil
		}
		oursWall, oursRTT, oursTraps, err := measure(filepath.Join(e.bin, "vmware-rpctool"), "")
		if err != nil {
			return rows, err
		}
		out, err := e.trapRun(ctx, false, args, `vmware-rpctool "info-set guestinfo.k v" >/dev/null && bdprobe rpci 5000 "info-get guestinfo.k"`)
		if err != nil {
			return rows, err
		}
		guestRTT, err := nsLine(out)
		if err != nil {
			return rows, err
		}
		ref, refWall, note := "—", "—", "peer unavailable (needs apt and root: make test-deps)"
		if peer != "" {
			lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
			w, rtt, traps, err := measure(filepath.Join(peer, "usr/bin/vmware-rpctool"), "LD_LIBRARY_PATH="+lib)
			if err != nil {
				return rows, err
			}
			ref, refWall = fmt.Sprintf("%.1f µs", rtt), millis(w)
			note = fmt.Sprintf("backdoor calls per invocation: ours %.1f, open-vm-tools %.1f", oursTraps, traps)
		}
		up := strings.ToUpper(path)
		rows = append(rows,
			row{fmt.Sprintf("RPCI round trip under the trap, %s path, timed by the VMX (median of %d)", up, n), fmt.Sprintf("%.1f µs", oursRTT), ref, fmt.Sprintf("`info-get guestinfo.k`; ours on a persistent channel timed by the guest: %s (median of 5000)", micros(guestRTT))},
			row{fmt.Sprintf("`vmware-rpctool 'info-get guestinfo.k'` wall time under the trap, %s path (median of %d)", up, n), millis(oursWall), refWall, note},
		)
	}
	return rows, nil
}
