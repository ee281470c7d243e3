package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
)

// hgfsTarget is one way to reach a share's files: through a mount made
// by some client (a Mounter), or the share's directory itself (native).
type hgfsTarget struct {
	name    string
	mounter *hgfswork.Mounter // nil: the host directory directly
	// dir is the target's own directory on the host share; the mount
	// source is .host:/s/<base of dir>.
	dir string
	// opts are extra -o options for every mount of this target.
	opts []string
	// writeBlock is the write(2) size of the sequential write (0: 1 MiB).
	writeBlock int
	// trips reads the simulator's HGFS round-trip counter.
	trips func() (uint64, error)
	// trap, if set, reads the trap's counters (stops, vsock connections).
	trap func() (trapCounts, error)
	// bdCalls reads the simulator's backdoor call counter (LB + HB),
	// nil where the target does not use the backdoor.
	bdCalls func() (uint64, error)
	// requests, if set, reads the simulator's HGFS requests by op
	// (-hgfs-meta only).
	requests func() (map[string]uint64, error)
}

// benchHGFS runs the shared-folder workloads: under the ptrace trap,
// ours beside Debian's vmhgfs-fuse on the same vmxsim share (both over
// the backdoor), then ours over unix:DIR beside the share's directory
// itself (the native limit). HGFS round trips are counted on the
// simulator.
func benchHGFS(ctx context.Context, e *env) ([]row, error) {
	parent, tarball, cleanup, err := hgfsFixture(e)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var rows []row
	r, err := benchHGFSTrap(ctx, e, parent, tarball)
	rows = append(rows, r...)
	if err != nil {
		return rows, err
	}
	r, err = benchHGFSUnix(ctx, e, parent, tarball)
	return append(rows, r...), err
}

// hgfsFixture makes the directory the shares live in and the tarball of
// the tar workload's source tree; cleanup removes them.
func hgfsFixture(e *env) (parent, tarball string, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return "", "", nil, errors.New("needs root and /dev/fuse to mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "", "", nil, errors.New("needs /dev/fuse")
	}
	parent = shareParent(e)
	cleanup = func() {
		if parent != e.scratch {
			os.RemoveAll(parent)
		}
	}
	src := filepath.Join(parent, "tree")
	tarball = filepath.Join(parent, "tree.tar")
	if err := hgfswork.MakeSourceTree(src, benchTree); err != nil {
		cleanup()
		return "", "", nil, err
	}
	if err := hgfswork.Tar(tarball, src); err != nil {
		cleanup()
		return "", "", nil, err
	}
	return parent, tarball, cleanup, nil
}

// benchHGFSTrap: ours and Debian's vmhgfs-fuse, each in the foreground
// under one `vmxsim run` with one share, each in its own directory of it.
func benchHGFSTrap(ctx context.Context, e *env, parent, tarball string) ([]row, error) {
	peer := peerRoot()
	if peer == "" || runtime.GOARCH != "amd64" {
		return []row{{"HGFS under the trap", "—", "—", "needs linux/amd64 and Debian's open-vm-tools (make test-deps as root)"}}, nil
	}
	// Both clients over the backdoor, as the rows say (ours would take
	// vsock under the trap by default; Debian's has no vsock).
	share, simDir, sh, stop, err := shareTrapShell(e, parent, "--no-vsock")
	if err != nil {
		return nil, err
	}
	defer stop()
	ours := hgfswork.Foreground("govmtools", sh.Start, nil, filepath.Join(e.bin, "vmhgfs-fuse"))
	lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
	debian := hgfswork.Foreground("open-vm-tools", sh.Start, []string{"LD_LIBRARY_PATH=" + lib}, filepath.Join(peer, "usr/bin/vmhgfs-fuse"))
	trips := tripCounter(ctx, e, simDir)
	calls := bdCallCounter(ctx, simDir)
	o := hgfsTarget{name: "ours", mounter: &ours, dir: filepath.Join(share, "ours"), trips: trips, bdCalls: calls}
	// Debian's client fails every write over 65,457 bytes against a host
	// that caps guest messages at 64 KiB (open-vm-tools#437, reproduced
	// by the first row); its sequential write uses 60 KiB writes, the
	// users' workaround (dd bs=60k).
	d := hgfsTarget{name: "open-vm-tools", mounter: &debian, dir: filepath.Join(share, "debian"), writeBlock: 61440, trips: trips, bdCalls: calls}
	var rows []row
	if hgfsMeta {
		return benchHGFSTrapMeta(ctx, e, o, d, tarball, simDir)
	}
	oursBig, err := checkBigWrite(ctx, o)
	if err != nil {
		return rows, fmt.Errorf("ours, one 1 MiB write: %w", err)
	}
	debianBig, err := checkBigWrite(ctx, d)
	if err != nil {
		return rows, fmt.Errorf("open-vm-tools, one 1 MiB write: %w", err)
	}
	rows = append(rows, row{"HGFS under the trap: one 1 MiB write(2)", writeOutcome(oursBig), writeOutcome(debianBig), "open-vm-tools#437: a request over 64 KiB is refused by the VMX; ours never sends one"})
	ores, dres, names, err := runHGFSPair(ctx, o, d, tarball)
	if err != nil {
		return rows, err
	}
	for _, w := range names {
		or, dr := ores[w], dres[w]
		rows = append(rows, row{
			What:      "HGFS under the trap: " + w,
			Ours:      fmt.Sprintf("%s, %d round trips", or.show(), or.trips),
			Reference: fmt.Sprintf("%s, %d round trips", dr.show(), dr.trips),
			Notes:     fmt.Sprintf("same vmxsim share (tmpfs), both over the backdoor; %s", or.versus(dr)),
		})
	}
	raw, err := e.rawRatesTrap(ctx, parent)
	if err != nil {
		return rows, fmt.Errorf("transport rates under the trap: %w", err)
	}
	rows = append(rows, rawRows("under the trap", raw, seqResult(ores, names, "write"), seqResult(ores, names, "read"))...)
	trapCPU, err := e.trapCPUPerCall(ctx)
	if err != nil {
		return rows, fmt.Errorf("tracee CPU per trapped call: %w", err)
	}
	rows = append(rows, row{
		What:      "HGFS under the trap: the traced process's own CPU per trapped backdoor call (GETVERSION × 20000, best of 3)",
		Ours:      micros(trapCPU),
		Reference: "—",
		Notes:     "utime+stime of bdprobe itself (getrusage): the fault, the signal delivery up to each ptrace stop and the resume are charged to the traced process, not only to vmxsim; the CPU rows below also give their figure less backdoor calls × this, what VMware would leave",
	})
	for _, w := range names {
		or, dr := ores[w], dres[w]
		rows = append(rows, row{
			What:      "HGFS guest CPU per op under the trap: " + w,
			Ours:      or.cpuCell(trapCPU),
			Reference: dr.cpuCell(trapCPU),
			Notes:     fmt.Sprintf("utime+stime of the FUSE daemon, all threads (/proc/PID/stat), per %s; both over the backdoor; ours/Debian's %s (target ≤ 0.50)", or.unit, cpuRatio(or, dr, trapCPU)),
		})
	}
	return rows, nil
}

// runHGFSPair runs every workload on ours (o) and then on Debian's (d),
// both under the trap.
func runHGFSPair(ctx context.Context, o, d hgfsTarget, tarball string) (ores, dres map[string]result, names []string, err error) {
	if ores, names, err = runHGFSTarget(ctx, o, tarball); err != nil {
		return nil, nil, nil, fmt.Errorf("ours under the trap: %w", err)
	}
	if dres, _, err = runHGFSTarget(ctx, d, tarball); err != nil {
		return nil, nil, nil, fmt.Errorf("open-vm-tools under the trap: %w", err)
	}
	return ores, dres, names, nil
}

// shareTrapShell starts a trap shell (`vmxsim run` with runArgs) serving
// share "s" from a new directory of parent; stop ends the shell and
// removes the share.
func shareTrapShell(e *env, parent string, runArgs ...string) (share, simDir string, sh *testutil.TrapShell, stop func(), err error) {
	if share, err = os.MkdirTemp(parent, "share-"); err != nil {
		return "", "", nil, nil, err
	}
	if simDir, err = os.MkdirTemp(e.scratch, "trap-"); err != nil {
		os.RemoveAll(share)
		return "", "", nil, nil, err
	}
	sh, err = testutil.StartTrapShell(testutil.TrapShellConfig{
		VMXSim: filepath.Join(e.bin, "vmxsim"),
		Dir:    simDir,
		Args:   append(runArgs, "--share", "s="+share, "--log-level", "error"),
		Stderr: os.Stderr,
	})
	if err != nil {
		os.RemoveAll(share)
		return "", "", nil, nil, err
	}
	return share, simDir, sh, func() { sh.Close(30 * time.Second); os.RemoveAll(share) }, nil
}

// bdCallCounter returns a function reading the simulator's backdoor
// calls (LB + HB) under `vmxsim run`.
func bdCallCounter(ctx context.Context, simDir string) func() (uint64, error) {
	ctl := newSimCtl(simDir)
	return func() (uint64, error) {
		st, err := ctl.State(ctx)
		if err != nil {
			return 0, fmt.Errorf("vmxsim ctl state: %w", err)
		}
		if st.Backdoor == nil {
			return 0, errors.New("vmxsim ctl state: no backdoor counters")
		}
		return st.Backdoor.calls(), nil
	}
}

// trapCPUPerCall is the traced process's own CPU (user + system) per
// trapped backdoor instruction: bdprobe's getrusage over 20000
// GETVERSION calls, best of three.
func (e *env) trapCPUPerCall(ctx context.Context) (time.Duration, error) {
	var best time.Duration
	for range 3 {
		out, err := e.trapRun(ctx, false, nil, "bdprobe trapcpu 20000")
		if err != nil {
			return 0, err
		}
		d, err := nsLine(out)
		if err != nil {
			return 0, err
		}
		if best == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

// checkBigWrite mounts t and writes 1 MiB with one write(2).
func checkBigWrite(ctx context.Context, t hgfsTarget) (writeErr, err error) {
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	mnt, err := os.MkdirTemp("", "mnt-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(mnt)
	if err := t.mounter.Mount(ctx, ".host:/s/"+filepath.Base(t.dir), mnt); err != nil {
		return nil, err
	}
	writeErr = hgfswork.WriteSeq(filepath.Join(mnt, "big"), 1<<20, 1<<20)
	os.Remove(filepath.Join(mnt, "big"))
	if err := hgfswork.Unmount(mnt); err != nil {
		return nil, err
	}
	return writeErr, nil
}

// writeOutcome is the cell of a write that was carried out: "succeeds",
// or "fails: " and the errno it failed with.
func writeOutcome(writeErr error) string {
	if writeErr == nil {
		return "succeeds"
	}
	var pe *os.PathError
	if errors.As(writeErr, &pe) {
		writeErr = pe.Err
	}
	return fmt.Sprintf("fails: %v", writeErr)
}

// benchHGFSUnix: ours over unix:DIR and the share's directory directly.
func benchHGFSUnix(ctx context.Context, e *env, parent, tarball string) ([]row, error) {
	share, err := os.MkdirTemp(parent, "share-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(share)
	s, err := e.startSim(ctx, "--share", "s="+share)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// In the foreground, so the bench knows the daemon's pid.
	ours := hgfswork.Foreground("govmtools", localStart(ctx), nil, filepath.Join(e.bin, "vmhgfs-fuse"), "--rpc", "unix:"+s.dir)
	trips := tripCounter(ctx, e, s.dir)
	ores, names, err := runHGFSTarget(ctx, hgfsTarget{name: "ours", mounter: &ours, dir: filepath.Join(share, "ours"), trips: trips, requests: requestCounter(ctx, e, s.dir)}, tarball)
	if err != nil {
		return nil, fmt.Errorf("ours over unix: %w", err)
	}
	if hgfsMeta {
		return metaRows("over unix", ores, nil, names, 0), nil
	}
	nres, _, err := runHGFSTarget(ctx, hgfsTarget{name: "native", dir: filepath.Join(share, "native"), trips: trips}, tarball)
	if err != nil {
		return nil, fmt.Errorf("native: %w", err)
	}
	var rows []row
	for _, w := range names {
		o, n := ores[w], nres[w]
		rows = append(rows, row{
			What:      "HGFS over unix: " + w,
			Ours:      fmt.Sprintf("%s, %d round trips", o.show(), o.trips),
			Reference: "native " + n.show(),
			Notes:     fmt.Sprintf("govmtools vmhgfs-fuse --rpc unix:DIR, share on tmpfs; %.1fx native", o.ratio(n)),
		})
	}
	raw, err := rawRatesUnix(ctx, s.dir)
	if err != nil {
		return rows, fmt.Errorf("transport rates over unix: %w", err)
	}
	rows = append(rows, rawRows("over unix", raw, seqResult(ores, names, "write"), seqResult(ores, names, "read"))...)
	for _, w := range names {
		o := ores[w]
		rows = append(rows, row{
			What:      "HGFS guest CPU per op over unix: " + w,
			Ours:      o.cpuCell(0),
			Reference: "—",
			Notes:     fmt.Sprintf("utime+stime of vmhgfs-fuse --rpc unix:DIR, all threads (/proc/PID/stat), per %s", o.unit),
		})
	}
	return rows, nil
}

// localStart is an hgfswork.Starter running argv here (not under the
// trap); the process is reaped when it exits.
func localStart(ctx context.Context) hgfswork.Starter {
	return func(env []string, argv ...string) (int, func() string, error) {
		out := &testutil.SyncBuffer{}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return 0, nil, err
		}
		go cmd.Wait()
		return cmd.Process.Pid, out.String, nil
	}
}

// seqResult is the result of the 256 MiB sequential write or read.
func seqResult(res map[string]result, names []string, kind string) result {
	for _, n := range names {
		if strings.HasPrefix(n, "256 MiB sequential "+kind) {
			return res[n]
		}
	}
	return result{}
}

// tripCounter returns a function reading the simulator's HGFS round
// trips. A state that cannot be read is an error, never 0 round trips.
func tripCounter(ctx context.Context, e *env, simDir string) func() (uint64, error) {
	return func() (uint64, error) {
		out, err := ctlState(ctx, e, simDir)
		if err != nil {
			return 0, err
		}
		return parseRoundTrips(out)
	}
}

// ctlState returns `vmxsim ctl state` of the simulator in simDir.
func ctlState(ctx context.Context, e *env, simDir string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(e.bin, "vmxsim"), "ctl", "--dir", simDir, "state").Output()
	if err != nil {
		return nil, fmt.Errorf("vmxsim ctl state: %w", err)
	}
	return out, nil
}

// parseRoundTrips reads hgfs.roundTrips of `vmxsim ctl state`; it must
// be there.
func parseRoundTrips(state []byte) (uint64, error) {
	var st struct {
		HGFS *struct {
			RoundTrips *uint64 `json:"roundTrips"`
		} `json:"hgfs"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		return 0, fmt.Errorf("vmxsim ctl state: %w", err)
	}
	if st.HGFS == nil || st.HGFS.RoundTrips == nil {
		return 0, errors.New("vmxsim ctl state: no hgfs.roundTrips")
	}
	return *st.HGFS.RoundTrips, nil
}

type result struct {
	d     time.Duration
	bytes int64
	trips uint64
	trap  trapCounts // with hgfsTarget.trap: the workload's share
	// cpu is the FUSE daemon's user + system time over the workload
	// (-1: not measured); ops is how many operations the workload does,
	// unit what one is; calls are backdoor calls (LB + HB) in the
	// workload, under the trap.
	cpu   time.Duration
	ops   int
	unit  string
	calls uint64
	// reqs are the workload's HGFS requests by op, with
	// hgfsTarget.requests.
	reqs map[string]uint64
}

// cpuCell is the cell of a CPU-per-op row: µs per op, and under the trap
// (trapCPU > 0) what remains without the trap's share (backdoor calls ×
// the tracee's CPU per trapped call).
func (r result) cpuCell(trapCPU time.Duration) string {
	if r.cpu < 0 || r.ops == 0 {
		return "not measured"
	}
	s := fmt.Sprintf("%s per %s (%.2f s in all", micros(r.cpu/time.Duration(r.ops)), r.unit, r.cpu.Seconds())
	if r.cpu < 50*time.Millisecond {
		s += "; under 5 ticks of /proc's 10 ms"
	}
	s += ")"
	if trapCPU > 0 && r.calls > 0 {
		s += fmt.Sprintf("; %s without the trap's share (%.1f backdoor calls per %s)", micros(r.netCPU(trapCPU)/time.Duration(r.ops)), float64(r.calls)/float64(r.ops), r.unit)
	}
	return s
}

// netCPU is the CPU less the trap's share (never below 0).
func (r result) netCPU(trapCPU time.Duration) time.Duration {
	return max(r.cpu-time.Duration(r.calls)*trapCPU, 0)
}

// cpuRatio is ours' CPU per op over Debian's: as measured, and without
// the trap's share of each.
func cpuRatio(ours, debian result, trapCPU time.Duration) string {
	if ours.cpu <= 0 || debian.cpu <= 0 {
		return "n/a"
	}
	s := fmt.Sprintf("%.2f", ours.cpu.Seconds()/debian.cpu.Seconds())
	if dn := debian.netCPU(trapCPU); dn > 0 {
		s += fmt.Sprintf(" (%.2f without the trap's share)", ours.netCPU(trapCPU).Seconds()/dn.Seconds())
	}
	return s
}

// daemonCPU is utime + stime of pid, all its threads (those that ended
// included), from /proc/PID/stat.
func daemonCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("no pid for the FUSE daemon")
	}
	sec, err := cpuTime(pid)
	return time.Duration(sec * float64(time.Second)), err
}

func (r result) show() string {
	if r.bytes > 0 {
		return fmt.Sprintf("%.0f MB/s", float64(r.bytes)/r.d.Seconds()/1e6)
	}
	return fmt.Sprintf("%.3f s", r.d.Seconds())
}

func (r result) ratio(n result) float64 {
	if n.d == 0 {
		return 0
	}
	return r.d.Seconds() / n.d.Seconds()
}

// versus says how much faster r is than ref, and with how many fewer
// round trips.
func (r result) versus(ref result) string {
	s := fmt.Sprintf("ours %.1fx faster", ref.ratio(r))
	if r.d > ref.d {
		s = fmt.Sprintf("ours %.1fx SLOWER", r.ratio(ref))
	}
	if r.trips > 0 {
		s += fmt.Sprintf(", %.1fx fewer round trips", float64(ref.trips)/float64(r.trips))
	}
	return s
}

const (
	benchFiles   = 10000
	benchSeqSize = 256 << 20
	benchBlock   = 1 << 20
	benchTree    = 2000
)

// shareParent is where shares live: tmpfs when there is one, so that the
// rows measure the protocol and not a (shared, noisy) disk.
func shareParent(e *env) string {
	if d, err := os.MkdirTemp("/dev/shm", "govmtools-bench-"); err == nil {
		return d
	}
	return e.scratch
}

// hgfsSteps, when set (-hgfs-steps), picks the HGFS workloads to run: those
// whose name contains one of its comma-separated words.
var hgfsSteps string

// stepWanted reports whether -hgfs-steps lets the workload name run.
func stepWanted(name string) bool {
	if hgfsSteps == "" {
		return true
	}
	for w := range strings.SplitSeq(hgfsSteps, ",") {
		if w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// runHGFSTarget runs every workload on one target and returns the results
// by workload name, and the names in order.
func runHGFSTarget(ctx context.Context, tg hgfsTarget, tarball string) (map[string]result, []string, error) {
	if err := os.MkdirAll(tg.dir, 0o755); err != nil {
		return nil, nil, err
	}
	mnt := ""
	var mountOpts []string
	mount := func() error {
		if tg.mounter == nil {
			mnt = tg.dir
			return nil
		}
		if mnt == "" {
			var err error
			if mnt, err = os.MkdirTemp("", "mnt-"); err != nil {
				return err
			}
		}
		return tg.mounter.Mount(ctx, ".host:/s/"+filepath.Base(tg.dir), mnt, append(append([]string(nil), tg.opts...), mountOpts...)...)
	}
	unmount := func() error {
		if tg.mounter == nil {
			return nil
		}
		return hgfswork.Unmount(mnt)
	}
	if err := mount(); err != nil {
		return nil, nil, err
	}
	defer func() {
		unmount()
		if tg.mounter != nil {
			os.Remove(mnt)
		}
	}()
	remount := func() error {
		if err := unmount(); err != nil {
			return err
		}
		return mount()
	}

	res := map[string]result{}
	var names []string
	files := func() string { return filepath.Join(mnt, "files") }
	// fresh remounts with opts before the timed part: the workload then
	// starts on a new mount (and a new daemon), whose start-up is left
	// out of time, round trips and CPU alike.
	fresh := func(opts ...string) func() error {
		return func() error {
			mountOpts = opts
			defer func() { mountOpts = nil }()
			return remount()
		}
	}
	listAll := func() error {
		n, err := hgfswork.ListLong(files())
		if err == nil && n != benchFiles {
			err = fmt.Errorf("listed %d entries", n)
		}
		return err
	}
	steps := []struct {
		name  string
		bytes int64
		ops   int
		unit  string
		fn    func() error
		prep  func() error // before the timed part
	}{
		{fmt.Sprintf("create %d files", benchFiles), 0, benchFiles, "file", func() error {
			if err := os.Mkdir(files(), 0o755); err != nil {
				return err
			}
			return hgfswork.CreateFiles(files(), benchFiles)
		}, nil},
		{fmt.Sprintf("`ls -l` of %d entries (fresh mount)", benchFiles), 0, benchFiles, "entry", listAll, func() error {
			if err := listAll(); err != nil { // as before the remount in earlier tables
				return err
			}
			return fresh()()
		}},
		{fmt.Sprintf("`stat` of %d paths, first pass (fresh mount, 60 s timeouts)", benchFiles), 0, benchFiles, "path", func() error {
			return hgfswork.StatFiles(files(), benchFiles)
		}, fresh("attr_timeout=60", "entry_timeout=60")},
		{fmt.Sprintf("`stat` of %d paths, second pass (cached)", benchFiles), 0, benchFiles, "path", func() error { return hgfswork.StatFiles(files(), benchFiles) }, nil},
		{fmt.Sprintf("`ls -l` of %d entries again (cached: 60 s timeouts, listed once before)", benchFiles), 0, benchFiles, "entry", listAll, listAll},
		{"256 MiB sequential write (1 MiB writes; open-vm-tools 60 KiB, see #437)", benchSeqSize, benchSeqSize >> 20, "MiB", func() error {
			block := benchBlock
			if tg.writeBlock != 0 {
				block = tg.writeBlock
			}
			return hgfswork.WriteSeq(filepath.Join(mnt, "seq"), benchSeqSize, block)
		}, nil},
		{"256 MiB sequential read (fresh mount)", benchSeqSize, benchSeqSize >> 20, "MiB", func() error {
			n, err := hgfswork.ReadSeq(filepath.Join(mnt, "seq"), benchBlock)
			if err == nil && n != benchSeqSize {
				err = fmt.Errorf("read %d bytes", n)
			}
			return err
		}, fresh()},
		{fmt.Sprintf("tar extract of a %d-file source tree", benchTree), 0, benchTree, "file", func() error {
			d := filepath.Join(mnt, "tree")
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			return hgfswork.ExtractTar(tarball, d)
		}, nil},
	}
	// counters reads what a step is measured by besides time.
	type counters struct {
		trips, calls uint64
		cpu          time.Duration
	}
	read := func() (counters, error) {
		var c counters
		if tg.mounter == nil {
			return c, nil
		}
		var err error
		if c.trips, err = tg.trips(); err != nil {
			return c, err
		}
		if tg.bdCalls != nil {
			if c.calls, err = tg.bdCalls(); err != nil {
				return c, err
			}
		}
		c.cpu = -1
		if tg.mounter.PID != nil {
			if c.cpu, err = daemonCPU(tg.mounter.PID()); err != nil {
				return c, err
			}
		}
		return c, nil
	}
	for _, st := range steps {
		if !stepWanted(st.name) || (hgfsMeta && !metaStep(st.name)) {
			continue
		}
		if st.prep != nil {
			if err := st.prep(); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
		}
		before, err := read()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", st.name, err)
		}
		var reqsBefore map[string]uint64
		if tg.requests != nil {
			if reqsBefore, err = tg.requests(); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
		}
		var trapBefore trapCounts
		if tg.trap != nil {
			if trapBefore, err = tg.trap(); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
		}
		start := time.Now()
		if err := st.fn(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", st.name, err)
		}
		r := result{d: time.Since(start), bytes: st.bytes, ops: st.ops, unit: st.unit, cpu: -1}
		if tg.mounter != nil {
			after, err := read()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
			r.trips, r.calls = after.trips-before.trips, after.calls-before.calls
			if before.cpu >= 0 {
				r.cpu = after.cpu - before.cpu
			}
		}
		if tg.trap != nil {
			after, err := tg.trap()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
			r.trap = after.sub(trapBefore)
		}
		if tg.requests != nil {
			if r.reqs, err = tg.requests(); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", st.name, err)
			}
			for op, n := range reqsBefore {
				r.reqs[op] -= n
			}
		}
		res[st.name] = r
		names = append(names, st.name)
	}
	return res, names, nil
}
