package e2e

import (
	"crypto/rand"
	"math/big"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/kmsgdump/kmsgtest"
)

// trapKmsgdumpArgs are vmware-kmsgdump's flags under the trap: --rpc is
// left to its default, auto, which finds the backdoor; only the machine's
// pstore, crash directory and state are kept out of reach.
func trapKmsgdumpArgs(root string, extra ...string) []string {
	return append([]string{"--pstore", filepath.Join(root, "pstore"), "--crash-dir", filepath.Join(root, "crash"),
		"--state-dir", filepath.Join(root, "state")}, extra...)
}

// TestKmsgdumpTrapLineLengths: over the backdoor under vmxsim run, on the
// high-bandwidth path and (--lb) the low-bandwidth one that moves 4 bytes a
// call, lines of every length mod 4, 1020-byte lines and longer lines split
// at 1020 bytes arrive in vmware.log byte for byte; the binary closes its
// one channel.
func TestKmsgdumpTrapLineLengths(t *testing.T) {
	for _, mode := range []string{"hb", "lb"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var args []string
			if mode == "lb" {
				args = append(args, "--lb")
			}
			tr := testutil.StartTrap(t, args...)
			root := t.TempDir()
			rec := kmsgtest.WriteLengths(t, filepath.Join(root, "pstore"))
			if _, errOut, code := tr.Run(t, filepath.Join(tr.Bin, "vmware-kmsgdump"), trapKmsgdumpArgs(root, "--once")...); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := guestLines(t, tr.Dir)
			if diff := kmsgtest.CheckShipped(got, []kmsgtest.Record{rec}); diff != "" {
				t.Fatal(diff)
			}
			lengths := map[int]int{} // lines by length mod 4
			full := 0                // lines of 1020 bytes
			for _, l := range rec.Lines {
				lengths[len(l)%4]++
				if len(l) == 1020 {
					full++
				}
			}
			if len(lengths) != 4 || full < 3 {
				t.Fatalf("fixture: lines by length mod 4 %v, %d of 1020 bytes", lengths, full)
			}
			bd := backdoorStats(t, tr)
			if mode == "hb" && (bd["hbOut"] == 0 || bd["hbIn"] == 0) || mode == "lb" && bd["hbOut"]+bd["hbIn"] != 0 {
				t.Fatalf("%s: backdoor counters %v", mode, bd)
			}
			if bd["opens"] != 1 || bd["channels"] != 0 {
				t.Fatalf("want one channel, opened once and closed: %v", bd)
			}
		})
	}
}

// shippedOnce checks that the guest lines of vmware.log are rec's lines
// exactly once, apart from kmsgdump's resume notes; it returns the notes.
func shippedOnce(t *testing.T, dir string, rec kmsgtest.Record) []string {
	t.Helper()
	all := guestLines(t, dir)
	got, notes := withoutResumes(all)
	if diff := kmsgtest.CheckShipped(got, []kmsgtest.Record{rec}); diff != "" {
		t.Fatalf("%s\nnotes: %q", diff, notes)
	}
	return notes
}

// TestKmsgdumpTrapKilledExactlyOnce kills vmware-kmsgdump over the
// backdoor at each moment of a line's journey: as it announces the line
// (the VMX never has it), right after the VMX logged it and before the
// guest heard back, and as it acknowledges the reply. The VMX keeps a dead
// process's channel with its reply (vmxsim run --keep-dead-channels), so
// each restart asks it whether the line in flight arrived, and every line
// is in vmware.log exactly once, with no "may appear twice"; the killed
// runs' channels are closed by their successors.
//
// Under vmxsim run's default, which closes a dead process's channels,
// the restart cannot ask: the line the VMX logged appears twice, right
// after a resume note that says it may.
func TestKmsgdumpTrapKilledExactlyOnce(t *testing.T) {
	for _, keep := range []bool{true, false} {
		name := "keep-dead-channels"
		if !keep {
			name = "dead-channels-closed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if keep {
				args = append(args, "--keep-dead-channels")
			}
			tr := testutil.StartTrap(t, args...)
			root := t.TempDir()
			rec := bigRecord(t, filepath.Join(root, "pstore"), 3000)
			bin := filepath.Join(tr.Bin, "vmware-kmsgdump")
			moments := []string{"sendsize", "sent", "recvstatus"}
			if !keep {
				moments = []string{"sent"}
			}
			for _, at := range moments {
				tr.Ctl(t, "backdoor", "kill", at, "after", "700")
				if _, errOut, code := tr.Run(t, bin, trapKmsgdumpArgs(root, "--once")...); code != 128+int(syscall.SIGKILL) {
					t.Fatalf("kill at %s: exit %d, want death by SIGKILL: %s", at, code, errOut)
				}
			}
			if _, errOut, code := tr.Run(t, bin, trapKmsgdumpArgs(root, "--once")...); code != 0 {
				t.Fatalf("final run: exit %d: %s", code, errOut)
			}
			bd := backdoorStats(t, tr)
			if bd["kills"] != float64(len(moments)) {
				t.Fatalf("backdoor counters %v", bd)
			}
			if !keep {
				all := guestLines(t, tr.Dir)
				i := strings.Index(strings.Join(all, "\n"), "may appear twice")
				if i < 0 {
					t.Fatalf("no note says a line may appear twice")
				}
				kept, repeats := withoutRepeats(t, all)
				if repeats != 1 {
					t.Fatalf("%d lines repeated, want the one the VMX logged as the guest died", repeats)
				}
				if diff := kmsgtest.CheckShipped(kept, []kmsgtest.Record{rec}); diff != "" {
					t.Fatal(diff)
				}
				return
			}
			notes := shippedOnce(t, tr.Dir, rec)
			t.Logf("resume notes: %q", notes)
			if len(notes) != len(moments) {
				t.Errorf("notes %q, want one resume note per kill", notes)
			}
			for _, n := range notes {
				if strings.Contains(n, "may appear twice") {
					t.Errorf("note %q: the host could have been asked", n)
				}
			}
			if bd["channels"] != 0 {
				t.Errorf("channels left open: %v", bd)
			}
		})
	}
}

// withoutRepeats drops the resume notes and, after each run of them, a
// line equal to the one before the run (a line repeated by a restart);
// such a repeat must follow a note that says a line may appear twice. It
// returns the rest and the number of repeats.
func withoutRepeats(t *testing.T, all []string) (kept []string, repeats int) {
	t.Helper()
	for i := 0; i < len(all); i++ {
		if !strings.HasPrefix(all[i], "kmsgdump: resume ") {
			kept = append(kept, all[i])
			continue
		}
		j, warned := i, false
		for j < len(all) && strings.HasPrefix(all[j], "kmsgdump: resume ") {
			warned = warned || strings.Contains(all[j], "may appear twice")
			j++
		}
		if i > 0 && j < len(all) && all[j] == all[i-1] {
			if !warned {
				t.Errorf("line %q repeated after notes that did not say it might be: %q", all[j], all[i:j])
			}
			repeats++
			j++
		}
		i = j - 1
	}
	return kept, repeats
}

// TestKmsgdumpTrapKilledAtRandom kills vmware-kmsgdump at random moments
// while it ships a large record over the backdoor, with no help from the
// VMX beyond keeping a dead process's channel as the VMX does. Every
// restart settles the line in flight with the VMX: every line is in
// vmware.log exactly once.
func TestKmsgdumpTrapKilledAtRandom(t *testing.T) {
	tr := testutil.StartTrap(t, "--keep-dead-channels")
	root := t.TempDir()
	rec := bigRecord(t, filepath.Join(root, "pstore"), 6000)
	bin := filepath.Join(tr.Bin, "vmware-kmsgdump")
	kills := 0
	for range 4 {
		before := len(guestLines(t, tr.Dir))
		pid, output := tr.Start(t, bin, trapKmsgdumpArgs(root, "--once")...)
		n, _ := rand.Int(rand.Reader, big.NewInt(800))
		finished := false
		testutil.WaitFor(t, 60*time.Second, "lines shipped", func() bool {
			if strings.Contains(output(), "saved kernel logs shipped") {
				finished = true
				return true
			}
			return len(guestLines(t, tr.Dir)) >= before+100+int(n.Int64())
		})
		if finished {
			tr.Wait(t, pid)
			break
		}
		syscall.Kill(pid, syscall.SIGKILL)
		if code := tr.Wait(t, pid); code != 128+int(syscall.SIGKILL) {
			if code == 0 {
				break // it finished first
			}
			t.Fatalf("exit %d: %s", code, output())
		}
		kills++
	}
	if _, errOut, code := tr.Run(t, bin, trapKmsgdumpArgs(root, "--once")...); code != 0 {
		t.Fatalf("final run: exit %d: %s", code, errOut)
	}
	notes := shippedOnce(t, tr.Dir, rec)
	for _, n := range notes {
		if strings.Contains(n, "may appear twice") {
			t.Errorf("note %q: the host could have been asked", n)
		}
	}
	if kills == 0 {
		t.Fatal("no run was killed")
	}
	if bd := backdoorStats(t, tr); bd["channels"] != 0 {
		t.Errorf("channels left open: %v", bd)
	}
	t.Logf("%d kills, every line once", kills)
}
