// Command bench is `make bench`: it measures govmtools against the
// simulated VMX (and, where the peer tier is available, Debian's
// open-vm-tools under the same conditions) and prints one markdown table.
// The current table lives in docs/benchmarks.md with the machine and date.
//
// Speed and memory targets are checked here, never in timed tests.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// row is one line of the table.
type row struct {
	What      string // what is measured, with its unit
	Ours      string
	Reference string // open-vm-tools, native, cited(...), or "—"
	Notes     string
}

// benchmark produces rows; it returns an error when it cannot run here.
type benchmark struct {
	name string
	run  func(ctx context.Context, e *env) ([]row, error)
}

// benchmarks is the table, in order. Each feature adds its entries.
var benchmarks = []benchmark{
	{"rpci", benchRPCI},
	{"guestinfo", benchGuestInfo},
	{"trap-cost", benchTrapCost},
	{"trap-rpci", benchTrapRPCI},
	{"vmtoolsd", benchVmtoolsd},
	{"hgfs", benchHGFS},
	{"hgfs-vsock", benchHGFSVSock},
	{"kmsgdump", benchKmsgdump},
	{"vmbackup", benchVmbackup},
	{"guestops", benchGuestOps},
}

// env is what every benchmark gets: the built binaries and a scratch
// directory.
type env struct {
	bin     string
	helpers string // bdprobe and other test helpers
	scratch string
}

func main() {
	only := flag.String("only", "", "run only benchmarks whose name contains this")
	flag.DurationVar(&idleWindow, "idle", idleWindow, "idle window of the vmtoolsd resource rows (shorten only to try the harness)")
	flag.StringVar(&hgfsSteps, "hgfs-steps", "", "run only the HGFS workloads whose name contains one of these comma-separated words (e.g. sequential: the data rows)")
	flag.BoolVar(&hgfsMeta, "hgfs-meta", false, "with -only hgfs: only the metadata workloads, with CPU per op and HGFS requests by op")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		fatal(err)
	}
	scratch, err := os.MkdirTemp("", "govmtools-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(scratch)
	e := &env{bin: filepath.Join(root, "bin"), scratch: scratch}
	if _, err := os.Stat(filepath.Join(e.bin, "vmxsim")); err != nil {
		fatal(fmt.Errorf("run `make build` first: %w", err))
	}
	// Test helpers (bdprobe) are never shipped in bin/; build them here.
	e.helpers = filepath.Join(scratch, "helpers")
	if out, err := exec.Command("go", "build", "-o", e.helpers+"/", "./internal/cmd/...").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("build helpers: %v\n%s", err, out))
	}

	fmt.Printf("Machine: %s, %d CPUs, %s; %s\n\n", cpuModel(), runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| Measurement | govmtools | open-vm-tools / reference | Notes |")
	fmt.Println("|---|---|---|---|")
	failed := false
	// The fleet scene goes last: the kernel tears its 500 network
	// namespaces down after it returns, load the rows after it would share.
	slices.SortStableFunc(benchmarks, func(a, b benchmark) int {
		return cmp.Compare(btoi(a.name == "fleet"), btoi(b.name == "fleet"))
	})
	for _, b := range benchmarks {
		if *only != "" && !strings.Contains(b.name, *only) {
			continue
		}
		rows, err := b.run(ctx, e)
		if !writeRows(os.Stdout, b.name, rows, err) {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// writeRows prints the rows a benchmark measured and then, if it failed,
// an error row: a failed measurement is never printed as a figure. It
// reports whether the benchmark succeeded.
func writeRows(w io.Writer, name string, rows []row, err error) bool {
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.What, r.Ours, r.Reference, r.Notes)
	}
	if err != nil {
		fmt.Fprintf(w, "| %s | error | | %s |\n", name, strings.ReplaceAll(err.Error(), "|", "/"))
		return false
	}
	return true
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// sim is a `vmxsim serve` started for a benchmark.
type sim struct {
	dir  string
	proc *testutil.SimProcess
}

func (e *env) startSim(ctx context.Context, args ...string) (*sim, error) {
	dir, err := os.MkdirTemp(e.scratch, "sim-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "vmxsim"), append([]string{"serve", "--dir", dir, "--log-level", "warn"}, args...)...)
	cmd.Stderr = os.Stderr
	p, err := testutil.LaunchSim(cmd, dir, 10*time.Second, nil)
	if err != nil {
		return nil, fmt.Errorf("vmxsim did not start: %w", err)
	}
	return &sim{dir: dir, proc: p}, nil
}

func (s *sim) stop() { s.proc.Stop(syscall.SIGTERM, time.Minute) }

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// cited is a reference cell that is a published figure, not one this
// run measured: "cited: FIGURE (SOURCE)". The bench measures every
// other cell it prints (TestNoLiteralCells).
func cited(figure, source string) string { return "cited: " + figure + " (" + source + ")" }

func micros(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d.Nanoseconds())/1e3) }

func millis(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Nanoseconds())/1e6) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
