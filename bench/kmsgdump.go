package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// benchKmsgdump measures lines per second into vmware.log for a 1 MiB
// kernel log: over one persistent RPCI channel (vmware-kmsgdump's way)
// beside opening, sending on and closing a channel per line (the way of
// Photon's kernel dumper), each measured by bench/logship; and the real
// binary shipping the same log as a pstore record (`--once`, with its
// per-line progress writes).
//
// Transports: unix:DIR (vmxsim serve). The backdoor trap column is a
// second call of shipRates with the logship command wrapped in
// `vmxsim run --dir DIR --` and --rpc backdoor.
func benchKmsgdump(ctx context.Context, e *env) ([]row, error) {
	logship := filepath.Join(e.scratch, "logship")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", logship, "./bench/logship").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build logship: %v: %s", err, out)
	}
	text := kernelLog(1 << 20)
	logFile := filepath.Join(e.scratch, "kernel.log")
	if err := os.WriteFile(logFile, text, 0o644); err != nil {
		return nil, err
	}
	nLines := bytes.Count(text, []byte{'\n'})

	s, err := e.startSim(ctx)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	unix := func(mode string) *exec.Cmd {
		return exec.CommandContext(ctx, logship, "--rpc", "unix:"+s.dir, "--mode", mode, logFile)
	}
	persistent, oneshot, err := shipRates(s.dir, unix, nLines)
	if err != nil {
		return nil, err
	}

	// The binary, on the same text as one pstore record.
	pstore := filepath.Join(e.scratch, "pstore")
	os.MkdirAll(pstore, 0o755)
	if err := os.WriteFile(filepath.Join(pstore, "dmesg-ramoops-0"), append([]byte("Panic#1 Part1\n"), text...), 0o440); err != nil {
		return nil, err
	}
	before := guestLineCount(s.dir)
	start := time.Now()
	out, err := exec.CommandContext(ctx, filepath.Join(e.bin, "vmware-kmsgdump"), "--rpc", "unix:"+s.dir, "--once",
		"--pstore", pstore, "--crash-dir", "", "--state-dir", filepath.Join(e.scratch, "kmsgdump-state")).CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("vmware-kmsgdump: %v: %s", err, out)
	}
	if got := guestLineCount(s.dir) - before; got != nLines+2 {
		return nil, fmt.Errorf("vmware-kmsgdump shipped %d lines, want %d and a header and footer", got, nLines)
	}
	binRate := float64(nLines) / wall.Seconds()

	return []row{
		{fmt.Sprintf("kmsgdump: 1 MiB kernel log (%d lines) into vmware.log, one persistent RPCI channel, unix:DIR", nLines),
			rate(persistent), "Photon's way, open/send/close per line: " + rate(oneshot),
			fmt.Sprintf("%.1fx; measured by bench/logship; the backdoor trap column comes with `vmxsim run`", persistent/oneshot)},
		{"`vmware-kmsgdump --once`, the same log as one pstore record, unix:DIR", rate(binRate), "—",
			fmt.Sprintf("%s wall, process start and per-line progress writes included", millis(wall))},
	}, nil
}

// shipRates runs logship (built by cmd for a mode) persistent and one-shot
// and returns lines per second for each, checking that vmware.log in dir
// got every line.
func shipRates(dir string, cmd func(mode string) *exec.Cmd, nLines int) (persistent, oneshot float64, err error) {
	rates := map[string]float64{}
	for _, mode := range []string{"persistent", "oneshot"} {
		best := 0.0
		for range 3 {
			before := guestLineCount(dir)
			out, err := cmd(mode).Output()
			if err != nil {
				return 0, 0, fmt.Errorf("logship --mode %s: %v", mode, err)
			}
			f := strings.Fields(string(out))
			if len(f) != 2 {
				return 0, 0, fmt.Errorf("logship: %q", out)
			}
			n, _ := strconv.Atoi(f[0])
			secs, _ := strconv.ParseFloat(f[1], 64)
			if got := guestLineCount(dir) - before; got != n || n != nLines {
				return 0, 0, fmt.Errorf("logship --mode %s: %d lines sent, %d in vmware.log, want %d", mode, n, got, nLines)
			}
			best = max(best, float64(n)/secs)
		}
		rates[mode] = best
	}
	return rates["persistent"], rates["oneshot"], nil
}

func guestLineCount(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "vmware.log"))
	return bytes.Count(b, []byte("| I125: Guest: "))
}

func rate(linesPerSec float64) string { return fmt.Sprintf("%.0f lines/s", linesPerSec) }

// kernelLog returns about size bytes of kernel log lines in the syslog
// format pstore writes ("<level>[seconds] text"), varied in length.
func kernelLog(size int) []byte {
	msgs := []string{
		"Call Trace:",
		" <TASK>",
		" dump_stack_lvl+0x48/0x70",
		" __warn+0x81/0x130",
		"RIP: 0010:vmw_du_cursor_plane_atomic_update+0x2f/0x80 [vmwgfx]",
		"Code: 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec 18 48 8b 47 28 48 8b 5f 08 4c 8b 60 10",
		"RSP: 0018:ffffb3a6c0d3bc58 EFLAGS: 00010246",
		"RAX: 0000000000000000 RBX: ffff8e4a81234000 RCX: 0000000000000000",
		"Modules linked in: vmwgfx drm_ttm_helper ttm vmw_vsock_vmci_transport vsock vmw_vmci nft_chain_nat xt_MASQUERADE",
		"CPU: 1 PID: 431 Comm: kworker/1:2 Tainted: G        W          6.1.0-13-amd64 #1 Debian 6.1.55-1",
		"Hardware name: VMware, Inc. VMware Virtual Platform/440BX Desktop Reference Platform, BIOS 6.00 11/12/2020",
		"sd 2:0:0:0: [sda] tag#12 timing out command, waited 180s",
	}
	var b []byte
	for i := 0; len(b) < size; i++ {
		b = fmt.Appendf(b, "<%d>[%5d.%06d] %s\n", 4+i%3, 1000+i/100, (i*7919)%1000000, msgs[i%len(msgs)])
	}
	return b
}
