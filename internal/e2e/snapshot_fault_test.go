package e2e

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
)

// snapAsync runs `ctl snapshot` with opts in the background.
func snapAsync(ctl *vmxsim.Ctl, t *testing.T, opts quiesce.Options) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := ctl.Snapshot(t.Context(), opts)
		done <- err
	}()
	return done
}

func faultOf(err error) string {
	var fe *quiesce.Error
	if errors.As(err, &fe) {
		return fe.Fault
	}
	return ""
}

func hasReply(r quiesce.Result, cmd string) bool {
	return slices.ContainsFunc(r.Replies, func(x quiesce.Reply) bool { return x.Cmd == cmd })
}

// TestSnapshotQuiesceFaults: with the loop file system frozen for a
// snapshot, (a) the host holding snapshotDone back past the guest's
// timeout (tools.conf timeout=6), (b) the host aborting (vmbackup.abort),
// and, for ours, (c) vmtoolsd SIGKILLed (its thaw guard) each leave it
// thawed, the first two before the host says anything more; the host
// reports the fault vSphere would. Both guests, under the trap.
func TestSnapshotQuiesceFaults(t *testing.T) {
	for _, gt := range snapGuests {
		t.Run(gt.name+"/done late", func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			g := gt.start(t, startSnapTrap(t, mnt), mnt, "[vmbackup]\ntimeout = 6\n", false)
			done := snapAsync(g.ctl, t, quiesce.Options{Quiesce: true, DelayDone: quiesce.Duration(time.Minute)})
			g.waitCommit(t)
			w := testutil.StartWrite(t, mnt)
			testutil.WriteBlocks(t, w, "frozen")
			testutil.WriteCompletes(t, w, 10*time.Second, "after the guest's timeout")
			if err := <-done; faultOf(err) != quiesce.FaultFilesystem {
				t.Errorf("snapshot: %v, want %s", err, quiesce.FaultFilesystem)
			}
			// The host sends snapshotDone once the guest has finished on
			// its own (the hold ends early), so it may be in the replies;
			// it must find nothing frozen to thaw.
			for _, r := range g.lastSnapshot(t).Replies {
				if r.Cmd == "vmbackup.snapshotDone" && strings.HasPrefix(r.Reply, "OK") {
					t.Errorf("snapshotDone answered %q: thawed by it, not by the guest's timeout", r.Reply)
				}
			}
			if got, want := eventSeq(g.lastSnapshot(t)), []string{"reset 0", "prov.snapshotCommit 0", "req.aborted 4", "req.done 0"}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
			if got := readLines(g.log); !slices.Equal(got, []string{"10-db freeze", "20-app freeze", "20-app freezeFail", "10-db freezeFail"}) {
				t.Errorf("scripts %q", got)
			}
		})
		t.Run(gt.name+"/abort", func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			g := gt.start(t, startSnapTrap(t, mnt), mnt, "", false)
			done := snapAsync(g.ctl, t, quiesce.Options{Quiesce: true, DelayDone: quiesce.Duration(time.Minute)})
			g.waitCommit(t)
			w := testutil.StartWrite(t, mnt)
			testutil.WriteBlocks(t, w, "frozen")
			if r, err := g.ctl.SnapshotAbort(t.Context()); err != nil || r != "OK " {
				t.Fatalf("abort: %q %v", r, err)
			}
			testutil.WriteCompletes(t, w, 10*time.Second, "after vmbackup.abort")
			if err := <-done; faultOf(err) != quiesce.FaultCanceled {
				t.Errorf("snapshot: %v, want %s", err, quiesce.FaultCanceled)
			}
			if got, want := eventSeq(g.lastSnapshot(t)), []string{"reset 0", "prov.snapshotCommit 0", "req.aborted 4", "req.done 0"}; !slices.Equal(got, want) {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
	t.Run("ours/sigkill", func(t *testing.T) {
		mnt, _ := testutil.LoopFS(t)
		g := startOursSnap(t, startSnapTrap(t, mnt), mnt, "", false)
		done := snapAsync(g.ctl, t, quiesce.Options{Quiesce: true, DelayDone: quiesce.Duration(2 * time.Second)})
		g.waitCommit(t)
		w := testutil.StartWrite(t, mnt)
		testutil.WriteBlocks(t, w, "frozen")
		syscall.Kill(g.pid, syscall.SIGKILL)
		testutil.WriteCompletes(t, w, 10*time.Second, "after SIGKILL of vmtoolsd")
		if err := <-done; faultOf(err) == "" {
			t.Errorf("snapshot with the guest killed: %v, want a fault", err)
		}
	})
}

// TestSnapshotQuiesceHostKilled: vmxsim (serve) SIGKILLed while our
// vmtoolsd is frozen for its snapshot: the guest thaws on its own, as
// the failed keep-alive aborts.
func TestSnapshotQuiesceHostKilled(t *testing.T) {
	mnt, _ := testutil.LoopFS(t)
	sim := testutil.StartSim(t)
	conf := t.TempDir()
	snapScripts(t, conf, false)
	vmx := &quiesceVMX{dir: sim.Dir}
	_, out := startQuiescer(t, vmx, conf, mnt)
	ctl := vmxsim.NewCtl(sim.Dir)
	testutil.WaitFor(t, 20*time.Second, "tools running", func() bool { return state(t, ctl).Tools.Running })
	g := &snapGuest{ctl: ctl}
	done := snapAsync(ctl, t, quiesce.Options{Quiesce: true, DelayDone: quiesce.Duration(time.Minute)})
	g.waitCommit(t)
	w := testutil.StartWrite(t, mnt)
	testutil.WriteBlocks(t, w, "frozen")
	sim.Kill(t)
	testutil.WriteCompletes(t, w, 15*time.Second, "after the host was killed")
	if err := <-done; err == nil {
		t.Error("the snapshot succeeded with the host gone")
	}
	if !strings.Contains(out.String(), "simulated FIFREEZE (not executed)") {
		t.Error("no simulated freeze of the machine's own mounts was logged")
	}
}

// TestSnapshotQuiesceBadInput: commands out of order get the protocol's
// errors from both guests, and our vmtoolsd refuses malformed
// vmbackup.start arguments from the host path (Debian's reads them as 0
// and quiesces: it is not run for those); nothing is frozen or recorded
// as frozen, and no event reaches the host.
func TestSnapshotQuiesceBadInput(t *testing.T) {
	for _, gt := range snapGuests {
		t.Run(gt.name, func(t *testing.T) {
			mnt, _ := testutil.LoopFS(t)
			tr := startSnapTrap(t, mnt)
			g := gt.start(t, tr, mnt, "", false)
			for cmd, want := range map[string]string{
				"vmbackup.abort":             "ERROR Error: no quiesce operation in progress",
				"vmbackup.snapshotDone":      "ERROR Error: no quiesce operation in progress",
				"vmbackup.snapshotDone 1":    "ERROR Error: no quiesce operation in progress",
				"vmbackup.snapshotCompleted": "ERROR Error: no quiesce complete in progress",
			} {
				if r, err := g.ctl.TCLO(t.Context(), cmd); err != nil || r != want {
					t.Errorf("%q: %q %v, want %q", cmd, r, err, want)
				}
			}
			if gt.name == "ours" {
				for _, args := range []string{"zz", "1 \x01", strings.Repeat("1", 5000), "-"} {
					_, err := g.ctl.Snapshot(t.Context(), quiesce.Options{Quiesce: true, StartArgs: &args})
					if faultOf(err) != quiesce.FaultSnapshot || !strings.Contains(err.Error(), "Error initializing quiesce operation.") {
						t.Errorf("start %q: %v", strconv.Quote(args), err)
					}
				}
			}
			st := state(t, g.ctl).Quiesce
			for _, s := range st.Snapshots {
				if len(s.Events) != 0 {
					t.Errorf("events after a refused start: %+v", s)
				}
			}
			if len(st.Stray) != 0 {
				t.Errorf("events with no snapshot: %+v", st.Stray)
			}
			if ex, rec := checkFreezesRecorded(t, tr, mnt); ex+rec != 0 || strings.Contains(tr.Logs(), "FITHAW") {
				t.Errorf("freezes executed %d, recorded %d", ex, rec)
			}
			if strings.Contains(g.output(), "simulated FIFREEZE") {
				t.Error("our vmtoolsd froze (simulated) on bad input")
			}
		})
	}
}
