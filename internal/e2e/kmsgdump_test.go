package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/kmsgdump/kmsg"
	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
	"github.com/govmtools/govmtools/vmxsim"
)

// guestLines returns the text of every "Guest:" line of the simulator's
// vmware.log, in order.
func guestLines(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "vmware.log"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := logLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// kmsgdumpArgs are the flags that keep the binary off the machine's real
// pstore, crash directory and state.
func kmsgdumpArgs(sim *testutil.Sim, pstore, crash, state string, extra ...string) []string {
	return append([]string{"--rpc", sim.Mode(), "--pstore", pstore, "--crash-dir", crash, "--state-dir", state}, extra...)
}

func TestKmsgdumpShipsPstoreAndKdump(t *testing.T) {
	sim := testutil.StartSim(t)
	root := t.TempDir()
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	state := filepath.Join(root, "state")
	_, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, pstore, crash, state, "--once")...)
	if code != 0 {
		t.Fatalf("vmware-kmsgdump --once: exit %d: %s", code, errOut)
	}
	got := guestLines(t, sim.Dir)
	if diff := kmsgtest.CheckShipped(got, recs); diff != "" {
		t.Fatalf("%s\nvmware.log guest lines:\n%s", diff, strings.Join(got, "\n"))
	}
	// pstore records archived and removed; kdump's file kept.
	left, _ := os.ReadDir(pstore)
	if len(left) != 1 || left[0].Name() != "console-ramoops-0" {
		t.Errorf("pstore left with %v", left)
	}
	if archived, _ := os.ReadDir(filepath.Join(state, "archive")); len(archived) != 6 {
		t.Errorf("archive holds %d files, want 6", len(archived))
	}
	if _, err := os.Stat(recs[len(recs)-1].Files[0]); err != nil {
		t.Errorf("kdump file: %v", err)
	}

	// A second run ships nothing.
	if _, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, pstore, crash, state, "--once")...); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut)
	}
	if again := guestLines(t, sim.Dir); len(again) != len(got) {
		t.Fatalf("second run shipped %d more lines: %q", len(again)-len(got), again[len(got):])
	}

	// --crash-after remove removes kdump's text once shipped (and it
	// is not shipped again: the state knows it).
	if _, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, pstore, crash, state, "--once", "--crash-after", "remove")...); code != 0 {
		t.Fatalf("third run: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(recs[len(recs)-1].Files[0]); !os.IsNotExist(err) {
		t.Errorf("kdump file not removed: %v", err)
	}
	if again := guestLines(t, sim.Dir); len(again) != len(got) {
		t.Fatalf("third run shipped lines: %q", again[len(got):])
	}

	// The host unreachable: exit 1 after --timeout, records left for later.
	pstore2, crash2, _ := kmsgtest.WritePstore(t, t.TempDir())
	_, errOut, code = sim.Run(t, "vmware-kmsgdump", "--rpc", "unix:"+t.TempDir(), "--pstore", pstore2, "--crash-dir", crash2,
		"--state-dir", filepath.Join(root, "state2"), "--once", "--timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "the rest ships on the next run") {
		t.Fatalf("unreachable host: exit %d: %s", code, errOut)
	}
	if n, _ := os.ReadDir(pstore2); len(n) != 7 {
		t.Errorf("unreachable host: pstore holds %d files, want all 7", len(n))
	}
}

// bigRecord writes a ramoops panic record of n lines and returns the
// record as it must be shipped.
func bigRecord(t *testing.T, dir string, n int) kmsgtest.Record {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("<4>[%5d.%06d] line %d of a long panic dump, with some padding to look like a call trace entry", 600+i/1000000, i%1000000, i)
	}
	path := filepath.Join(dir, "dmesg-ramoops-7")
	if err := os.WriteFile(path, []byte("Panic#1 Part1\n"+strings.Join(lines, "\n")+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	os.Chtimes(path, at, at)
	return kmsgtest.Record{Kind: "pstore", Name: "dmesg-ramoops-7", Files: []string{path}, Time: at, Lines: lines}
}

// withoutResumes drops the "resume" notes a restarted run ships, and
// returns them.
func withoutResumes(lines []string) (kept, resumes []string) {
	for _, l := range lines {
		if strings.HasPrefix(l, "kmsgdump: resume ") {
			resumes = append(resumes, l)
			continue
		}
		kept = append(kept, l)
	}
	return kept, resumes
}

// TestKmsgdumpKilledMidRecord kills the binary with SIGKILL while it ships
// a large record over unix:DIR, a stream that dies with the process (as
// vsock does): the host holds one of its requests (the message in
// flight), the process is killed, and the held request is dropped
// unhandled (twice), or handled after all. A restarted run cannot ask the
// host about a dead stream, so it says the line may appear twice: after
// the drops every line is shipped exactly once; after the handled one,
// that line, and only it, appears twice, right after that note. (Over the
// backdoor the restart can ask: TestKmsgdumpTrapKilledExactlyOnce.)
func TestKmsgdumpKilledMidRecord(t *testing.T) {
	sim := testutil.StartSim(t)
	ctl := vmxsim.NewCtl(sim.Dir)
	root := t.TempDir()
	pstore := filepath.Join(root, "pstore")
	rec := bigRecord(t, pstore, 5000)
	state := filepath.Join(root, "state")
	args := kmsgdumpArgs(sim, pstore, filepath.Join(root, "crash"), state, "--once")

	for _, kill := range []struct {
		after int
		drop  bool
	}{{1000, true}, {2000, true}, {1500, false}} {
		// The host holds the log request that comes after kill.after more.
		if _, err := ctl.Do(t.Context(), "POST", fmt.Sprintf("/fault/hold?rpci=log&after=%d", kill.after), ""); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(sim.Bin, "vmware-kmsgdump"), args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 30*time.Second, "a log request held", func() bool {
			b, err := ctl.Do(t.Context(), "GET", "/fault", "")
			return err == nil && strings.Contains(string(b), `"held": 1`)
		})
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		release := "/fault/release"
		if kill.drop {
			release += "?drop=1"
		}
		if _, err := ctl.Do(t.Context(), "POST", release, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, errOut, code := sim.Run(t, "vmware-kmsgdump", args...); code != 0 {
		t.Fatalf("final run: exit %d: %s", code, errOut)
	}
	all := guestLines(t, sim.Dir)
	_, resumes := withoutResumes(all)
	if len(resumes) != 3 {
		t.Errorf("%d resume lines, want 3", len(resumes))
	}
	got, repeats := withoutRepeats(t, all)
	if repeats != 1 {
		t.Errorf("%d lines repeated, want the one handled after the kill", repeats)
	}
	if diff := kmsgtest.CheckShipped(got, []kmsgtest.Record{rec}); diff != "" {
		t.Fatal(diff)
	}
	if _, err := os.Stat(rec.Files[0]); !os.IsNotExist(err) {
		t.Errorf("record not removed after shipping: %v", err)
	}
}

// TestKmsgdumpKilledAtRandom kills the binary at random moments over
// unix:DIR, a stream that dies with the process, with no help from the
// host. Nothing may be lost. A kill that lands after the host logged a
// line but before the guest recorded it repeats that one line: the
// restart cannot ask a dead stream what became of it. The bound is exact:
// at most one repeated line per kill, only the line right before the
// restart's resume note, and only where that note says it may appear
// twice. (Over the backdoor the restart asks the VMX and nothing repeats:
// TestKmsgdumpTrapKilledAtRandom.)
func TestKmsgdumpKilledAtRandom(t *testing.T) {
	sim := testutil.StartSim(t)
	root := t.TempDir()
	pstore := filepath.Join(root, "pstore")
	rec := bigRecord(t, pstore, 8000)
	args := kmsgdumpArgs(sim, pstore, filepath.Join(root, "crash"), filepath.Join(root, "state"), "--once")
	kills := 0
	ctl := vmxsim.NewCtl(sim.Dir)
	for i := range 3 {
		n, _ := rand.Int(rand.Reader, big.NewInt(1500))
		if i == 0 {
			// The first kill is certain: the VMX holds a "log" request
			// after a random number of lines, the process is killed with
			// that line in flight, and the VMX drops it unhandled.
			if err := ctl.HoldRPCI(t.Context(), "log", 200+int(n.Int64())); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(filepath.Join(sim.Bin, "vmware-kmsgdump"), args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		before := len(guestLines(t, sim.Dir))
		var exitErr error
		done := false
		testutil.WaitFor(t, 30*time.Second, "lines shipped", func() bool {
			select {
			case exitErr = <-exited:
				done = true
				return true
			default:
			}
			if i == 0 {
				st, err := ctl.FaultStatus(t.Context())
				var f struct{ Held int }
				return err == nil && json.Unmarshal(st, &f) == nil && f.Held > 0
			}
			return len(guestLines(t, sim.Dir)) >= before+200+int(n.Int64())
		})
		if done {
			if i == 0 {
				t.Fatalf("vmware-kmsgdump finished with a request held: %v", exitErr)
			}
			if exitErr != nil {
				t.Fatalf("vmware-kmsgdump: %v", exitErr)
			}
			break // it finished first
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := <-exited
		if i == 0 {
			if err := ctl.ReleaseRPCI(t.Context(), true); err != nil {
				t.Fatal(err)
			}
		}
		if err == nil {
			break // it finished first
		}
		kills++
	}
	if kills == 0 {
		t.Fatal("no kill landed: the process always finished first")
	}
	if _, errOut, code := sim.Run(t, "vmware-kmsgdump", args...); code != 0 {
		t.Fatalf("final run: exit %d: %s", code, errOut)
	}
	got, repeats := withoutRepeats(t, guestLines(t, sim.Dir))
	if repeats > kills {
		t.Errorf("%d repeated lines after %d kills", repeats, kills)
	}
	if diff := kmsgtest.CheckShipped(got, []kmsgtest.Record{rec}); diff != "" {
		t.Fatal(diff)
	}
	t.Logf("%d kills, %d lines repeated at resume points", kills, repeats)
}

// notifySocket listens for sd_notify datagrams and returns the socket
// path and a channel of the states received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

// follower is a running vmware-kmsgdump --follow.
type follower struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer // its stdout and stderr so far
	done <-chan struct{}      // closed once it has exited
}

// startFollow starts vmware-kmsgdump --follow and waits for READY=1.
func startFollow(t *testing.T, sim *testutil.Sim, args ...string) *follower {
	t.Helper()
	sock, states := notifySocket(t)
	f := &follower{cmd: exec.Command(filepath.Join(sim.Bin, "vmware-kmsgdump"), append(args, "--follow")...)}
	f.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	f.out, f.done = testutil.StartLogged(t, "vmware-kmsgdump", f.cmd)
	select {
	case s := <-states:
		if !strings.HasPrefix(s, "READY=1") {
			t.Fatalf("first notification %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no READY=1 from vmware-kmsgdump")
	}
	return f
}

// stop sends SIGTERM and requires a clean exit.
func (f *follower) stop(t *testing.T) {
	t.Helper()
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("vmware-kmsgdump did not stop within 10 s of SIGTERM")
	}
	if !f.cmd.ProcessState.Success() {
		t.Fatalf("vmware-kmsgdump after SIGTERM: %v", f.cmd.ProcessState)
	}
}

func writeKmsg(t *testing.T, path string, recs ...kmsg.Record) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range recs {
		if _, err := f.Write(kmsg.Encode(r)); err != nil {
			t.Fatal(err)
		}
	}
}

func krec(seq uint64, level int, msg string) kmsg.Record {
	return kmsg.Record{Level: level, Seq: seq, Time: time.Duration(seq) * time.Millisecond, Flag: '-', Message: []byte(msg)}
}

func TestKmsgdumpFollowsFakeKmsg(t *testing.T) {
	for _, kind := range []string{"file", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			sim := testutil.StartSim(t)
			root := t.TempDir()
			kpath := filepath.Join(root, "kmsg")
			if kind == "fifo" {
				if err := syscall.Mkfifo(kpath, 0o600); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(kpath, kmsg.Encode(krec(1, 4, "before the start: not shipped")), 0o600); err != nil {
				t.Fatal(err)
			}
			pstore, crash, recs := kmsgtest.WritePstore(t, root)
			args := kmsgdumpArgs(sim, pstore, crash, filepath.Join(root, "state"), "--kmsg", kpath, "--context-before", "2", "--context-after", "1")
			f := startFollow(t, sim, args...)
			// READY=1 came after the saved records were shipped.
			saved := guestLines(t, sim.Dir)
			if diff := kmsgtest.CheckShipped(saved, recs); diff != "" {
				t.Fatalf("saved records before READY: %s", diff)
			}
			writeKmsg(t, kpath,
				krec(2, 6, "info: not shipped"),
				krec(3, 4, "a warning"),
				krec(4, 6, "context 1 (dropped: only two before)"),
				krec(5, 6, "context 2"),
				krec(6, 7, "context 3"),
				krec(7, 4, "WARNING: CPU: 1 PID: 7 at kernel/foo.c:1 foo+0x1/0x2"),
				krec(8, 6, "after 1"),
				krec(9, 6, "context before the panic"),
				krec(10, 0, "Kernel panic - not syncing: test"))
			want := []string{
				"<4>[    0.003000] a warning",
				"<6>[    0.005000] context 2",
				"<7>[    0.006000] context 3",
				"<4>[    0.007000] WARNING: CPU: 1 PID: 7 at kernel/foo.c:1 foo+0x1/0x2",
				"<6>[    0.008000] after 1",
				"<6>[    0.009000] context before the panic",
				"<0>[    0.010000] Kernel panic - not syncing: test",
			}
			testutil.WaitFor(t, 10*time.Second, "live lines in vmware.log", func() bool { return len(guestLines(t, sim.Dir)) >= len(saved)+len(want) })
			f.stop(t)
			if got := guestLines(t, sim.Dir)[len(saved):]; strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("live lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if kind == "fifo" {
				return
			}
			// Restarted in the same boot, it resumes after the last record
			// it dealt with: what was written meanwhile ships, nothing twice.
			writeKmsg(t, kpath, krec(11, 3, "written while stopped"))
			f = startFollow(t, sim, args...)
			writeKmsg(t, kpath, krec(12, 4, "after the restart"))
			n := len(saved) + len(want)
			testutil.WaitFor(t, 10*time.Second, "lines after the restart", func() bool { return len(guestLines(t, sim.Dir)) >= n+2 })
			f.stop(t)
			got := guestLines(t, sim.Dir)[n:]
			if strings.Join(got, "|") != "<3>[    0.011000] written while stopped|<4>[    0.012000] after the restart" {
				t.Fatalf("after restart: %q", got)
			}
		})
	}
}

// TestKmsgdumpRealKmsg writes a marker into the real kernel log at warning
// level and expects it in vmware.log (within a 10 s hang detector: how
// fast is the bench's business).
func TestKmsgdumpRealKmsg(t *testing.T) {
	testutil.RequireRoot(t)
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	testutil.Require(t, err == nil, "a writable /dev/kmsg", fmt.Sprintf("run as root on Linux (%v)", err))
	defer w.Close()
	sim := testutil.StartSim(t)
	root := t.TempDir()
	f := startFollow(t, sim, kmsgdumpArgs(sim, filepath.Join(root, "pstore"), filepath.Join(root, "crash"), filepath.Join(root, "state"), "--kmsg", "/dev/kmsg")...)
	id := make([]byte, 8)
	rand.Read(id)
	marker := "govmtools-kmsgdump-test-marker-" + hex.EncodeToString(id)
	start := time.Now()
	if _, err := fmt.Fprintf(w, "<4>%s\n", marker); err != nil {
		t.Fatal(err)
	}
	var line string
	testutil.WaitFor(t, 10*time.Second, "the marker in vmware.log", func() bool {
		for _, l := range guestLines(t, sim.Dir) {
			if strings.HasSuffix(l, "] "+marker) {
				line = l
				return true
			}
		}
		return false
	})
	elapsed := time.Since(start)
	f.stop(t)
	t.Logf("the marker reached vmware.log after %v", elapsed)
	// Userspace writes carry the user facility: <12> is user.warning.
	if !strings.HasPrefix(line, "<12>[") {
		t.Errorf("marker line %q", line)
	}
	t.Logf("marker in vmware.log after %v: %s", elapsed, line)
}

// TestKmsgdumpHostComesBack starts vmware-kmsgdump --follow with no VMX to
// talk to: it still reports READY=1 (after --ready-timeout), holds the
// saved records and live lines, drops what its queue cannot hold and says
// so, and ships everything else once the VMX is there.
func TestKmsgdumpHostComesBack(t *testing.T) {
	bin := testutil.Binaries(t)
	root := t.TempDir()
	simDir := filepath.Join(root, "sim")
	kpath := filepath.Join(root, "kmsg")
	if err := os.WriteFile(kpath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pstore, crash, recs := kmsgtest.WritePstore(t, root)
	sim := &testutil.Sim{Dir: simDir, Bin: bin} // for Mode and the binary path only
	f := startFollow(t, sim, kmsgdumpArgs(sim, pstore, crash, filepath.Join(root, "state"),
		"--kmsg", kpath, "--ready-timeout", "200ms", "--queue", "3", "--debug")...)
	for i := uint64(1); i <= 6; i++ {
		writeKmsg(t, kpath, krec(i, 4, fmt.Sprintf("warning %d while the host is away", i)))
	}
	testutil.WaitFor(t, 20*time.Second, "three lines dropped", func() bool { return strings.Contains(f.out.String(), "dropped=3") })

	vmx := exec.Command(filepath.Join(bin, "vmxsim"), "serve", "--dir", simDir)
	if err := vmx.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		vmx.Process.Signal(syscall.SIGTERM)
		vmx.Wait()
	}()
	want := []string{
		"<4>[    0.001000] warning 1 while the host is away",
		"<4>[    0.002000] warning 2 while the host is away",
		"<4>[    0.003000] warning 3 while the host is away",
		"kmsgdump: 3 lines dropped: the host was unreachable and the queue (3 lines) was full",
	}
	var saved int
	for _, r := range recs {
		saved += len(r.Lines) + 2
	}
	testutil.WaitFor(t, 20*time.Second, "the backlog in vmware.log", func() bool { return len(guestLines(t, simDir)) >= saved+len(want) })
	f.stop(t)
	got := guestLines(t, simDir)
	if diff := kmsgtest.CheckShipped(got[:saved], recs); diff != "" {
		t.Fatalf("saved records: %s", diff)
	}
	if strings.Join(got[saved:], "\n") != strings.Join(want, "\n") {
		t.Fatalf("live lines:\n%s\nwant:\n%s", strings.Join(got[saved:], "\n"), strings.Join(want, "\n"))
	}
}

// TestKmsgdumpLineLengths ships lines of every length mod 4, up to and
// over the 1020-byte limit, and finds them intact in vmware.log. (The same
// fixture runs over the backdoor under the trap.)
func TestKmsgdumpLineLengths(t *testing.T) {
	sim := testutil.StartSim(t)
	root := t.TempDir()
	rec := kmsgtest.WriteLengths(t, filepath.Join(root, "pstore"))
	if _, errOut, code := sim.Run(t, "vmware-kmsgdump", kmsgdumpArgs(sim, filepath.Join(root, "pstore"), filepath.Join(root, "crash"), filepath.Join(root, "state"), "--once")...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if diff := kmsgtest.CheckShipped(guestLines(t, sim.Dir), []kmsgtest.Record{rec}); diff != "" {
		t.Fatal(diff)
	}
}
