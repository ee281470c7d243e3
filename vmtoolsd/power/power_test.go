package power

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
)

type harness struct {
	ops    *Ops
	host   *rpctest.RPCIHost
	mux    *rpc.Mux
	record string
	conf   map[string]string
	mu     sync.Mutex
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{host: &rpctest.RPCIHost{Reply: func([]byte) []byte { return []byte("1 ") }}, mux: &rpc.Mux{}, record: filepath.Join(dir, "power.record"), conf: map[string]string{}}
	h.ops = &Ops{
		RPCI:    &rpc.Client{Dial: h.host.Dial},
		Runner:  &RecordRunner{Path: h.record},
		ConfDir: dir,
		Scripts: func(key string) (string, bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			v, ok := h.conf[key]
			return v, ok
		},
	}
	h.ops.Register(h.mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.ops.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (h *harness) script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(h.ops.ConfDir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (h *harness) set(key, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conf[key] = value
}

func (h *harness) cmd(t *testing.T, c string) string {
	t.Helper()
	return string(h.mux.Dispatch(t.Context(), []byte(c)))
}

func (h *harness) recorded() []string {
	b, _ := os.ReadFile(h.record)
	return strings.Fields(string(b))
}

func (h *harness) statuses() []string {
	var out []string
	for _, r := range h.host.Requests() {
		if strings.HasPrefix(r, "tools.os.statechange.status ") {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) waitStatuses(t *testing.T, n int) []string {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, "state change status", func() bool { return len(h.statuses()) >= n })
	return h.statuses()
}

func TestNoScriptHaltIsSynchronous(t *testing.T) {
	h := newHarness(t)
	// No default script installed: the status goes out before the reply.
	if got := h.cmd(t, "OS_Halt"); got != "OK " {
		t.Fatalf("reply %q", got)
	}
	if got := h.statuses(); !slices.Equal(got, []string{"tools.os.statechange.status 1 1\x00"}) {
		t.Fatalf("statuses %q", got)
	}
	if got := h.recorded(); !slices.Equal(got, []string{"poweroff"}) {
		t.Fatalf("recorded %q", got)
	}
	if got := h.cmd(t, "OS_Reboot"); got != "OK " {
		t.Fatalf("reboot reply %q", got)
	}
	if got := h.recorded(); !slices.Equal(got, []string{"poweroff", "reboot"}) {
		t.Fatalf("recorded %q", got)
	}
	wantLog := "log Initiating reboot.\x00"
	if !slices.Contains(h.host.Requests(), wantLog) {
		t.Errorf("no %q in %q", wantLog, h.host.Requests())
	}
	for _, c := range []string{"OS_PowerOn", "OS_Resume", "OS_Suspend"} {
		if got := h.cmd(t, c); got != "OK " {
			t.Fatalf("%s reply %q", c, got)
		}
	}
	want := []string{"tools.os.statechange.status 1 1\x00", "tools.os.statechange.status 1 2\x00", "tools.os.statechange.status 1 3\x00", "tools.os.statechange.status 1 4\x00", "tools.os.statechange.status 1 5\x00"}
	if got := h.statuses(); !slices.Equal(got, want) {
		t.Fatalf("statuses %q", got)
	}
	if len(h.recorded()) != 2 {
		t.Fatal("power-on/resume/suspend must not shut down")
	}
}

func TestDefaultScriptRunsAndReports(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(h.ops.ConfDir, "ran")
	h.script(t, "poweroff-vm-default", "pwd > "+marker)
	if got := h.cmd(t, "OS_Halt"); got != "OK " {
		t.Fatalf("reply %q", got)
	}
	got := h.waitStatuses(t, 1)
	if got[0] != "tools.os.statechange.status 1 1\x00" {
		t.Fatalf("status %q", got)
	}
	if b, _ := os.ReadFile(marker); strings.TrimSpace(string(b)) != h.ops.ConfDir {
		t.Errorf("script ran in %q, want the conf dir", b)
	}
	testutil.WaitFor(t, 10*time.Second, "poweroff recorded", func() bool { return slices.Equal(h.recorded(), []string{"poweroff"}) })
	reqs := strings.Join(h.host.Requests(), "|")
	for _, want := range []string{"log Executing script for state change 'OS_Halt'.\x00", "log Script exit code: 0, success = 1\x00", "log Initiating halt.\x00"} {
		if !strings.Contains(reqs, want) {
			t.Errorf("missing %q in %q", want, reqs)
		}
	}
}

// TestSecondTry is the rule that makes a second Shut Down Guest work
// whatever the script does: the first failure is reported, the same
// failing request again goes through.
func TestSecondTry(t *testing.T) {
	h := newHarness(t)
	h.script(t, "failing.sh", "exit 3")
	h.set("poweroff-script", "failing.sh")
	if got := h.cmd(t, "OS_Halt"); got != "OK " {
		t.Fatalf("reply %q", got)
	}
	if got := h.waitStatuses(t, 1); got[0] != "tools.os.statechange.status 0 1\x00" {
		t.Fatalf("first status %q", got)
	}
	if len(h.recorded()) != 0 {
		t.Fatal("failed script must not shut down")
	}
	// A different state change in between does not count as the retry.
	h.cmd(t, "OS_PowerOn")
	h.waitStatuses(t, 2)
	h.cmd(t, "OS_Halt")
	if got := h.waitStatuses(t, 3); got[2] != "tools.os.statechange.status 0 1\x00" {
		t.Fatalf("status after intervening op %q", got)
	}
	h.cmd(t, "OS_Halt")
	if got := h.waitStatuses(t, 4); got[3] != "tools.os.statechange.status 1 1\x00" {
		t.Fatalf("second try %q", got)
	}
	testutil.WaitFor(t, 10*time.Second, "poweroff", func() bool { return slices.Equal(h.recorded(), []string{"poweroff"}) })
	if !strings.Contains(strings.Join(h.host.Requests(), "|"), "log Script exit code: 3, success = 0\x00") {
		t.Error("exit code not logged")
	}
}

func TestInProgressAndDisabledAndMissing(t *testing.T) {
	h := newHarness(t)
	gate := filepath.Join(h.ops.ConfDir, "gate")
	h.script(t, "slow.sh", "while [ ! -e "+gate+" ]; do sleep 0.01; done")
	h.set("suspend-script", "slow.sh")
	if got := h.cmd(t, "OS_Suspend"); got != "OK " {
		t.Fatal(got)
	}
	if got := h.cmd(t, "OS_Halt"); got != "ERROR State change already in progress" {
		t.Fatalf("concurrent: %q", got)
	}
	os.WriteFile(gate, nil, 0o644)
	if got := h.waitStatuses(t, 1); got[0] != "tools.os.statechange.status 1 5\x00" {
		t.Fatal(got)
	}
	testutil.WaitFor(t, 10*time.Second, "idle", func() bool { return h.cmd(t, "OS_Resume") == "OK " })

	// toolScripts.beforeSuspend=0 disables the script: synchronous OK.
	os.Remove(gate)
	if !h.ops.SetOption(t.Context(), "toolScripts.beforeSuspend", "0") || h.ops.SetOption(t.Context(), "toolScripts.beforeSuspend", "2") || h.ops.SetOption(t.Context(), "synctime", "1") {
		t.Fatal("SetOption results")
	}
	n := len(h.statuses())
	if got := h.cmd(t, "OS_Suspend"); got != "OK " || len(h.statuses()) != n+1 {
		t.Fatalf("disabled script: %q, statuses %q", got, h.statuses())
	}

	// A configured script that does not exist: error, failure reported.
	h.set("resume-script", "/nonexistent/script")
	if got := h.cmd(t, "OS_Resume"); got != "ERROR Error starting script" {
		t.Fatalf("missing script: %q", got)
	}
	if got := h.statuses(); got[len(got)-1] != "tools.os.statechange.status 0 4\x00" {
		t.Fatalf("missing script status %q", got)
	}
	// Empty value: no script.
	h.set("resume-script", `""`)
	if got := h.cmd(t, "OS_Resume"); got != "OK " {
		t.Fatal(got)
	}
}

type failRunner struct{}

func (failRunner) Shutdown(context.Context, Action) error { return errors.New("inhibited") }

func TestShutdownFailureIsReported(t *testing.T) {
	h := newHarness(t)
	h.ops.Runner = failRunner{}
	h.cmd(t, "OS_Reboot")
	if got := h.statuses(); !slices.Equal(got, []string{"tools.os.statechange.status 0 2\x00"}) {
		t.Fatalf("statuses %q", got)
	}
}

func TestSystemRunnerFallback(t *testing.T) {
	var calls []string
	r := &SystemRunner{
		Logind: func(ctx context.Context, m string) error {
			calls = append(calls, "logind "+m)
			return errors.New("blocked by inhibitor")
		},
		Exec: func(ctx context.Context, name string, args ...string) error {
			calls = append(calls, name+" "+strings.Join(args, " "))
			return nil
		},
	}
	if err := r.Shutdown(t.Context(), ActionReboot); err != nil {
		t.Fatal(err)
	}
	if want := []string{"logind Reboot", "/usr/bin/systemctl reboot -i"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %q", calls)
	}
	calls = nil
	r.Logind = func(ctx context.Context, m string) error { calls = append(calls, "logind "+m); return nil }
	if err := r.Shutdown(t.Context(), ActionPowerOff); err != nil || !slices.Equal(calls, []string{"logind PowerOff"}) {
		t.Fatalf("%v %q", err, calls)
	}
	r.Logind = func(context.Context, string) error { return errors.New("no bus") }
	r.Exec = func(context.Context, string, ...string) error { return errors.New("exit 1") }
	if err := r.Shutdown(t.Context(), ActionPowerOff); err == nil || !strings.Contains(err.Error(), "no bus") || !strings.Contains(err.Error(), "exit 1") {
		t.Fatalf("err %v", err)
	}
}

func TestParseRunner(t *testing.T) {
	if r, err := ParseRunner("record:/x", nil); err != nil || r.(*RecordRunner).Path != "/x" {
		t.Fatal(r, err)
	}
	if _, err := ParseRunner("system", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRunner("reboot-now", nil); err == nil {
		t.Fatal("bad runner accepted")
	}
}

// TestDefaultRunner: only a VMware VM on a real transport gets the system
// runner by default.
func TestDefaultRunner(t *testing.T) {
	yes := func() bool { return true }
	no := func() bool { return false }
	asked := false
	spy := func() bool { asked = true; return true }
	for _, tt := range []struct {
		transport string
		simulated bool
		isVMware  func() bool
		want      string
	}{
		{"auto", false, yes, "system"},
		{"vsock", false, yes, "system"},
		{"backdoor", false, yes, "system"},
		{"auto", false, no, "record:"},
		{"auto", false, nil, "record:"},
		{"unix", false, yes, "record:"},
		{"auto", true, yes, "record:"},
	} {
		got, reason := DefaultRunner(tt.transport, tt.simulated, tt.isVMware)
		if got != tt.want || reason == "" {
			t.Errorf("DefaultRunner(%q, %v) = %q, %q; want %q", tt.transport, tt.simulated, got, reason, tt.want)
		}
	}
	if DefaultRunner("unix", false, spy); asked {
		t.Error("unix: must not probe for VMware")
	}
}
