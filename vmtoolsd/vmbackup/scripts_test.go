package vmbackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// scriptHarness adds backup scripts that append "<name> <op> [arg]" to a
// log, and the legacy pair.
type scriptHarness struct {
	*harness
	log string
}

func newScriptHarness(t *testing.T, mod func(*Settings)) *scriptHarness {
	h := &scriptHarness{harness: newHarness(t, mod)}
	h.log = filepath.Join(h.dir, "scripts.log")
	if err := os.Mkdir(h.svc.Scripts.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.svc.Scripts.PreFreeze = filepath.Join(h.dir, "pre-freeze-script")
	h.svc.Scripts.PostThaw = filepath.Join(h.dir, "post-thaw-script")
	return h
}

// add writes a script; fail is the op it exits 1 on ("" never).
func (h *scriptHarness) add(t *testing.T, path, fail string, extra string) {
	t.Helper()
	if !strings.Contains(path, "/") {
		path = filepath.Join(h.svc.Scripts.Dir, path)
	}
	body := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " + h.log + "\n" + extra + "\n"
	if fail != "" {
		body += "[ \"$1\" = " + fail + " ] && exit 1\n"
	}
	body += "exit 0\n"
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (h *scriptHarness) ran(t *testing.T) []string {
	b, err := os.ReadFile(h.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (h *scriptHarness) waitIdle(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "the operation to end", func() bool {
		ev := h.events()
		return len(ev) > 0 && ev[len(ev)-1] == "req.done 0 "
	})
}

func (h *scriptHarness) waitState(t *testing.T, s State) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "state "+s.String(), func() bool { return h.svc.State() == s })
}

func TestScriptsOrder(t *testing.T) {
	h := newScriptHarness(t, func(s *Settings) { s.ScriptArg = "my arg" })
	h.add(t, "20-b", "", "")
	h.add(t, "10-a", "", "")
	h.add(t, ".hidden", "", "")
	h.add(t, "B-upper", "", "")
	if err := os.Mkdir(filepath.Join(h.svc.Scripts.Dir, "00-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.add(t, h.svc.Scripts.PreFreeze, "", "")
	h.add(t, h.svc.Scripts.PostThaw, "", "")
	h.cmd("vmbackup.start 0")
	h.waitState(t, SyncFreeze)
	want(t, "freeze", h.ran(t), []string{"pre-freeze-script_freeze_my_arg", ".hidden_freeze_my_arg", "10-a_freeze_my_arg", "20-b_freeze_my_arg", "B-upper_freeze_my_arg"})
	h.cmd("vmbackup.snapshotDone")
	h.waitIdle(t)
	want(t, "thaw", h.ran(t)[5:], []string{"B-upper_thaw_my_arg", "20-b_thaw_my_arg", "10-a_thaw_my_arg", ".hidden_thaw_my_arg", "post-thaw-script_thaw_my_arg"})
	want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.done 0 "})
}

// TestFreezeScriptFails: the failing script gets no freezeFail, the ones
// before it do (in reverse), nothing is frozen, the host hears code 2.
func TestFreezeScriptFails(t *testing.T) {
	h := newScriptHarness(t, nil)
	h.add(t, "10-a", "", "")
	h.add(t, "20-b", "freeze", "")
	h.add(t, "30-c", "", "")
	h.add(t, h.svc.Scripts.PostThaw, "", "")
	h.cmd("vmbackup.start 1")
	h.waitIdle(t)
	want(t, "scripts", h.ran(t), []string{"10-a_freeze", "20-b_freeze", "10-a_freezeFail", "post-thaw-script_freezeFail"})
	want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "req.error 2 Custom quiesce script failed.", "req.error 5 'VmBackupOnFreeze' operation failed.", "req.done 0 "})
	if len(h.fr.Log()) != 0 {
		t.Errorf("froze after a failed freeze script: %q", h.fr.Log())
	}
}

// TestFreezeFailsAfterScripts: a FIFREEZE failure gives every freeze
// script freezeFail.
func TestFreezeFailsAfterScripts(t *testing.T) {
	h := newScriptHarness(t, nil)
	h.add(t, "10-a", "", "")
	h.add(t, "20-b", "", "")
	h.fr.errs["/"] = os.ErrPermission
	h.cmd("vmbackup.start 1")
	h.waitIdle(t)
	want(t, "scripts", h.ran(t), []string{"10-a_freeze", "20-b_freeze", "20-b_freezeFail", "10-a_freezeFail"})
	want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "req.error 3 Error when enabling the sync provider.", "req.done 0 "})
	want(t, "frozen", h.fr.Frozen(), nil)
	want(t, "freezer", h.fr.Log(), []string{"freeze /data", "freeze /home", "thaw /home", "thaw /data"})
}

// TestThawScriptFails: every thaw script still runs; the failure is
// reported after the last.
func TestThawScriptFails(t *testing.T) {
	h := newScriptHarness(t, nil)
	h.add(t, "10-a", "", "")
	h.add(t, "20-b", "thaw", "")
	h.cmd("vmbackup.start 1")
	h.waitState(t, SyncFreeze)
	h.cmd("vmbackup.snapshotDone")
	h.waitIdle(t)
	want(t, "scripts", h.ran(t), []string{"10-a_freeze", "20-b_freeze", "20-b_thaw", "10-a_thaw"})
	ev := h.eventsNoKeepAlive()
	want(t, "events", ev[len(ev)-3:], []string{"req.error 2 Custom quiesce script failed.", "req.error 5 'VmBackupOnThaw' operation failed.", "req.done 0 "})
}

// TestScriptHangs: a freeze script that never exits is killed (with its
// children) at the per-script timeout, and at the abort timer.
func TestScriptHangs(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Settings)
	}{
		{"scriptTimeout", func(s *Settings) { s.ScriptTimeout = time.Second }},
		{"timeout", func(s *Settings) { s.Timeout = time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScriptHarness(t, tc.mod)
			pidfile := filepath.Join(h.dir, "child.pid")
			h.add(t, "10-a", "", "")
			h.add(t, "20-hang", "", "[ \"$1\" = freeze ] && { sleep 300 & echo $! > "+pidfile+"; wait; }")
			start := time.Now()
			h.cmd("vmbackup.start 1")
			h.waitIdle(t)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			want(t, "scripts", h.ran(t), []string{"10-a_freeze", "20-hang_freeze", "10-a_freezeFail"})
			b, _ := os.ReadFile(pidfile)
			testutil.WaitFor(t, 10*time.Second, "the script's child to be killed", func() bool {
				_, err := os.Stat("/proc/" + strings.TrimSpace(string(b)) + "/cmdline")
				st, _ := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/stat")
				return err != nil || strings.Contains(string(st), ") Z ")
			})
			if len(h.fr.Log()) != 0 {
				t.Errorf("froze: %q", h.fr.Log())
			}
		})
	}
}

// TestScriptRefused: a script others can write, or in a directory others
// can write, is not run: the start fails with code 2.
func TestScriptRefused(t *testing.T) {
	for _, tc := range []struct{ name, target string }{{"script", "10-a"}, {"directory", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScriptHarness(t, nil)
			h.add(t, "10-a", "", "")
			p := filepath.Join(h.svc.Scripts.Dir, tc.target)
			if err := os.Chmod(p, 0o777); err != nil {
				t.Fatal(err)
			}
			h.cmd("vmbackup.start 1")
			h.waitIdle(t)
			want(t, "scripts", h.ran(t), nil)
			want(t, "events", h.eventsNoKeepAlive(), []string{"reset 0 ", "req.error 2 Error when starting custom quiesce scripts.", "req.error 5 'VmBackupOnFreeze' operation failed.", "req.done 0 "})
		})
	}
	t.Run("owner", func(t *testing.T) {
		h := newScriptHarness(t, nil)
		h.add(t, "10-a", "", "")
		h.svc.Scripts.Owner = uint32(os.Getuid()) + 1
		h.cmd("vmbackup.start 1")
		h.waitIdle(t)
		want(t, "scripts", h.ran(t), nil)
	})
}

// TestExecScripts: execScripts=false, or a bare start, runs none.
func TestExecScripts(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		mod       func(*Settings)
	}{{"execScripts=false", "vmbackup.start 1", func(s *Settings) { s.ExecScripts = false }}, {"bare start", "vmbackup.start", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newScriptHarness(t, tc.mod)
			h.add(t, "10-a", "", "")
			h.cmd(tc.cmd)
			h.waitState(t, SyncFreeze)
			h.cmd("vmbackup.snapshotDone")
			h.waitIdle(t)
			want(t, "scripts", h.ran(t), nil)
		})
	}
}

func TestNoShebang(t *testing.T) {
	h := newScriptHarness(t, nil)
	p := filepath.Join(h.svc.Scripts.Dir, "plain")
	if err := os.WriteFile(p, []byte("echo \"plain $1\" >> "+h.log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.cmd("vmbackup.start 1")
	h.waitState(t, SyncFreeze)
	want(t, "scripts", h.ran(t), []string{"plain_freeze"})
}
