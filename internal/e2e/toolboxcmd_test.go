package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmxsim"
)

// GoldenToolboxCmd holds Debian's vmware-toolbox-cmd 12.2.0 answering
// toolboxCases under the trap (testdata/peer/README.md).
const GoldenToolboxCmd = "vmware-toolbox-cmd-12.2.0.json"

// toolboxConf is the tools.conf of the cases that have one: comments,
// a blank line, keys spaced as people write them.
const toolboxConf = `# tools.conf of the vmware-toolbox-cmd cases
[logging]
# the daemon's level
vmsvc.level = debug

[deployPkg]
enable-custom-scripts = true

[guestinfo]
poll-interval = 5

[powerops]
poweroff-script = "my poweroff"
`

// toolboxCase is one command line; Conf is whether tools.conf exists
// (toolboxConf) and User runs it as nobody instead of root. Vary names
// what legitimately differs between Debian's and ours (docs/toolbox-cmd.md):
// "version" (-v names govmtools), "time" (the host clock moves), "conf"
// (GLib respaces the whole file on a write; ours edits the one line).
type toolboxCase struct {
	Args []string `json:"args"`
	Conf bool     `json:"conf,omitempty"`
	User bool     `json:"user,omitempty"`
	Vary string   `json:"vary,omitempty"`
}

// toolboxResult is what one case printed and left in tools.conf.
type toolboxResult struct {
	toolboxCase
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Code   int    `json:"code"`
	After  string `json:"after,omitempty"`
}

func tc(args ...string) toolboxCase { return toolboxCase{Args: args} }
func tcConf(vary string, args ...string) toolboxCase {
	return toolboxCase{Args: args, Conf: true, Vary: vary}
}

// toolboxCases run in order against one simulated VM (timesync and device
// change the host's state).
var toolboxCases = []toolboxCase{
	tc(), tc("-h"), tc("--help"), tc("help"), tc("help", "stat"), tc("help", "config"),
	tc("help", "logging"), tc("help", "script"), tc("help", "timesync"), tc("help", "device"),
	tc("help", "disk"), tc("help", "info"), tc("help", "help"), tc("help", "bogus"), tc("help", "upgrade"),
	{Args: []string{"-v"}, Vary: "version"}, {Args: []string{"--version"}, Vary: "version"},
	{Args: []string{"--ver"}, Vary: "version"}, {Args: []string{"-hv"}, Vary: "version"},
	tc("--bogus"), tc("-x"), tc("--help=1"), tc("-qx"), tc("bogus"), tc("upgrade"), tc("upgrade", "status"),
	tc("--", "-v"), tc("gueststore"), tc("gueststore", "getcontent"), tc("gueststore", "getcontent", "/a", "/nonexistent/x"),
	tc("-q", "gueststore", "getcontent", "/a", "/nonexistent/x"), tc("gueststore", "bogus", "a", "b"),
	tc("gueststore", "getcontent", "/a", "/b", "c"), tc("help", "gueststore"), tc("help", "globalconf"),
	tc("globalconf"), tc("globalconf", "status"), tc("globalconf", "bogus"), tc("globalconf", "refresh"),
	tc("globalconf", "enable"), tcConf("conf", "globalconf", "enable"), tcConf("", "globalconf", "disable"),
	tcConf("", "globalconf", "status"),
	tc("timesync"), tc("timesync", "status"), tc("timesync", "enable"), tc("timesync", "status"),
	tc("timesync", "enable"), tc("-q", "timesync", "disable"), tc("timesync", "status"), tc("timesync", "bogus"),
	tc("stat"), tc("stat", "speed"), {Args: []string{"stat", "hosttime"}, Vary: "time"},
	tc("stat", "sessionid"), tc("stat", "balloon"), tc("stat", "swap"), tc("stat", "memlimit"),
	tc("stat", "memres"), tc("stat", "cpures"), tc("stat", "cpulimit"), tc("stat", "raw"),
	tc("stat", "raw", "text", "resources"), tc("stat", "raw", "json", "nosuch"), tc("stat", "bogus"),
	tc("stat", "speed", "-q"),
	tc("device"), tc("device", "list"), tc("device", "status", "ide1:0"), tc("device", "status", "nosuch"),
	tc("device", "disable", "ethernet0"), tc("device", "status", "ethernet0"), tc("device", "list"),
	tc("device", "enable", "ethernet0"), tc("-q", "device", "status", "nosuch"), tc("device", "enable"),
	tc("device", "bogus"),
	tc("disk"), tc("disk", "list"), tc("disk", "shrink", "/"), tc("disk", "wipe", "/"), tc("disk", "shrink"),
	tc("disk", "shrinkonly"), tc("disk", "bogus"),
	tc("config", "get", "deployPkg", "enable-custom-scripts"), tc("config", "remove", "logging", "x"),
	tc("config", "set", "logging", "vmsvc.level", "info"),
	tcConf("", "config", "get", "deployPkg", "enable-custom-scripts"),
	tcConf("", "config", "get", "logging", "vmsvc.level"), tcConf("", "config", "get", "logging", "nosuch"),
	tcConf("conf", "config", "set", "logging", "vmusr.level", "info"),
	tcConf("conf", "config", "set", "logging", "vmsvc.level", "warning"),
	tcConf("conf", "config", "set", "newgroup", "key", " a\tb\\c"),
	tcConf("conf", "config", "remove", "guestinfo", "poll-interval"),
	tcConf("conf", "config", "remove", "nosuch", "key"),
	tc("config"), tc("config", "get"), tc("config", "get", "logging"), tc("config", "set", "logging", "k"),
	tc("config", "bogus", "a", "b"), tc("-q", "config", "get", "a", "b"),
	tc("logging"), tc("logging", "level"), tc("logging", "level", "get"), tc("logging", "foo", "get", "x"),
	tcConf("", "logging", "level", "get", "vmsvc"), tc("logging", "level", "get", "vmusr"),
	tc("logging", "level", "set", "vmsvc"), tc("logging", "level", "set", "vmsvc", "loud"),
	tcConf("conf", "logging", "level", "set", "vmsvc", "info"), tc("logging", "level", "bogus", "x"),
	tc("script"), tc("script", "bogus"), tc("script", "power"), tc("script", "power", "default"),
	tc("script", "power", "current"), tcConf("", "script", "shutdown", "current"),
	tcConf("conf", "script", "power", "disable"), tcConf("conf", "script", "suspend", "enable"),
	tc("script", "resume", "set", "/nonexistent"), tcConf("conf", "script", "resume", "set", "/bin/sh"),
	tc("script", "power", "set"), tc("script", "power", "bogus"),
	tc("info"), tc("info", "update"), tc("info", "update", "network"), tc("info", "update", "bogus"),
	tc("info", "bogus", "network"),
	{Args: []string{"config", "get", "a", "b"}, User: true}, {Args: []string{"timesync", "status"}, User: true},
	{Args: []string{"logging", "level", "get", "vmsvc"}, User: true},
}

// runToolboxCases runs bin (named vmware-toolbox-cmd on PATH, so argv[0]
// is that) for every case under one trap. Each case runs in a mount
// namespace of its own with an overlay on /etc, where /etc/vmware-tools
// holds only the case's tools.conf: the machine's /etc is never
// written, and whatever it holds does not matter.
func runToolboxCases(t *testing.T, bin string, env []string, trapArgs ...string) []toolboxResult {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		testutil.Require(t, false, "unshare (util-linux)", "apt-get install util-linux")
	}
	tr := testutil.StartTrap(t, trapArgs...)
	work := t.TempDir()
	binDir := filepath.Join(work, "bin")
	os.Mkdir(binDir, 0o755)
	if err := os.Symlink(bin, filepath.Join(binDir, "vmware-toolbox-cmd")); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(work, "tools.conf")
	os.WriteFile(conf, []byte(toolboxConf), 0o644)
	const script = `set -e
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/u,workdir=$1/w" /etc
rm -rf /etc/vmware-tools
if [ -n "$2" ]; then mkdir /etc/vmware-tools; cp "$2" /etc/vmware-tools/tools.conf; fi
run=$3; shift 3
set +e
PATH="$BIN:$PATH" $run vmware-toolbox-cmd "$@" >"$OUT/stdout" 2>"$OUT/stderr"
rc=$?
if [ -f /etc/vmware-tools/tools.conf ]; then cp /etc/vmware-tools/tools.conf "$OUT/after"; fi
exit $rc
`
	var results []toolboxResult
	for i, c := range toolboxCases {
		dir := filepath.Join(work, "case", strconv.Itoa(i))
		for _, d := range []string{"u", "w", "out"} {
			os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		confArg, run := "", "env"
		if c.Conf {
			confArg = conf
		}
		if c.User {
			run = "setpriv --reuid=65534 --regid=65534 --clear-groups"
			os.Chmod(filepath.Join(dir, "out"), 0o777)
		}
		caseEnv := append([]string{"BIN=" + binDir, "OUT=" + filepath.Join(dir, "out")}, env...)
		_, shErr, code := tr.RunEnv(t, caseEnv, "unshare", append([]string{"-m", "sh", "-c", script, "sh", dir, confArg, run}, c.Args...)...)
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, "out", name))
			return string(b)
		}
		if shErr != "" {
			t.Fatalf("case %q: the harness failed: %s", c.Args, shErr)
		}
		res := toolboxResult{toolboxCase: c, Stdout: read("stdout"), Stderr: read("stderr"), Code: code}
		if c.Conf {
			res.After = read("after")
		}
		results = append(results, res)
	}
	return results
}

var hostTime = regexp.MustCompile(`^\d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d\n$`)

// compareToolbox compares ours with Debian's, case by case, allowing only
// the differences each case's Vary names.
func compareToolbox(t *testing.T, theirs, ours []toolboxResult) {
	t.Helper()
	if len(theirs) != len(ours) {
		t.Fatalf("%d golden cases, %d run: regenerate the golden file (%s=1)", len(theirs), len(ours), EnvUpdateGolden)
	}
	for i, d := range theirs {
		o := ours[i]
		if !slices.Equal(d.Args, o.Args) || d.Conf != o.Conf || d.User != o.User {
			t.Fatalf("case %d is %q in the golden file, %q here: regenerate it (%s=1)", i, d.Args, o.Args, EnvUpdateGolden)
		}
		switch d.Vary {
		case "version":
			want := "12.2.0.0 (govmtools "
			if !strings.HasPrefix(o.Stdout, want) || !strings.HasPrefix(d.Stdout, "12.2.0.") || o.Stderr != d.Stderr || o.Code != d.Code {
				t.Errorf("%q: ours %d %q %q, Debian's %d %q %q", d.Args, o.Code, o.Stdout, o.Stderr, d.Code, d.Stdout, d.Stderr)
			}
			continue
		case "time":
			if !hostTime.MatchString(o.Stdout) || !hostTime.MatchString(d.Stdout) || o.Code != d.Code || o.Stderr != d.Stderr {
				t.Errorf("%q: ours %d %q, Debian's %d %q", d.Args, o.Code, o.Stdout, d.Code, d.Stdout)
			}
			continue
		}
		if o.Stdout != d.Stdout || o.Stderr != d.Stderr || o.Code != d.Code {
			t.Errorf("%q (tools.conf %v, nobody %v):\nours:     exit %d\nstdout %q\nstderr %q\nDebian's: exit %d\nstdout %q\nstderr %q",
				d.Args, d.Conf, d.User, o.Code, o.Stdout, o.Stderr, d.Code, d.Stdout, d.Stderr)
		}
		compareAfter(t, d, o)
	}
}

// compareAfter: tools.conf after the command holds the same settings for
// both; ours keeps every line it did not have to change byte for byte.
func compareAfter(t *testing.T, d, o toolboxResult) {
	t.Helper()
	if d.Vary != "conf" {
		if o.After != d.After {
			t.Errorf("%q: tools.conf after: ours %q, Debian's %q", d.Args, o.After, d.After)
		}
		return
	}
	if a, b := confMap(d.After), confMap(o.After); !maps.Equal(a, b) {
		t.Errorf("%q: settings after: ours %v, Debian's %v", d.Args, b, a)
	}
	kept := 0
	for _, line := range strings.Split(toolboxConf, "\n") {
		if strings.Contains(o.After, line+"\n") {
			kept++
		}
	}
	if n := strings.Count(toolboxConf, "\n"); kept < n-1 {
		t.Errorf("%q: ours kept %d of %d lines of tools.conf:\n%s", d.Args, kept, n, o.After)
	}
}

func confMap(s string) map[string]string {
	f, _ := toolsconf.Parse([]byte(s))
	m := map[string]string{}
	for _, g := range f.Groups() {
		for _, k := range f.Keys(g) {
			v, _ := f.Lookup(g, k)
			m[g+"."+k] = v
		}
	}
	return m
}

func readToolboxGolden(t *testing.T) []toolboxResult {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", GoldenToolboxCmd))
	if err != nil {
		t.Fatal(err)
	}
	var res []toolboxResult
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestToolboxCmdGolden: under the trap, our vmware-toolbox-cmd prints the
// same stdout and stderr and exits with the same code as Debian's 12.2.0
// did for every case of the golden file, the listed differences aside.
func TestToolboxCmdGolden(t *testing.T) {
	ours := runToolboxCases(t, filepath.Join(testutil.Binaries(t), "vmware-toolbox-cmd"), nil)
	compareToolbox(t, readToolboxGolden(t), ours)
}

// TestToolboxCmdPeer runs Debian's vmware-toolbox-cmd through the same
// cases beside ours, each under its own trap: Debian's still answers as
// the golden file says (so the simulated host is what Debian's expects),
// and ours as Debian's. GOVMTOOLS_UPDATE_GOLDEN=1 rewrites the file.
func TestToolboxCmdPeer(t *testing.T) {
	p := testutil.Peer(t)
	traces := t.TempDir()
	theirs := runToolboxCases(t, p.Bin("vmware-toolbox-cmd"), p.Env, "--trace", filepath.Join(traces, "debian.jsonl"))
	if os.Getenv(EnvUpdateGolden) == "1" {
		data, err := json.MarshalIndent(theirs, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testutil.ModuleRoot(t), "testdata", "peer", GoldenToolboxCmd), append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := readToolboxGolden(t)
	for i := range golden {
		if i < len(theirs) && golden[i].Vary == "" && (golden[i].Stdout != theirs[i].Stdout || golden[i].Code != theirs[i].Code) {
			t.Errorf("Debian's now answers %q with %d %q, the golden file says %d %q", golden[i].Args, theirs[i].Code, theirs[i].Stdout, golden[i].Code, golden[i].Stdout)
		}
	}
	ours := runToolboxCases(t, filepath.Join(testutil.Binaries(t), "vmware-toolbox-cmd"), nil, "--trace", filepath.Join(traces, "ours.jsonl"))
	compareToolbox(t, theirs, ours)
	want, got := toolboxRequests(t, filepath.Join(traces, "debian.jsonl")), toolboxRequests(t, filepath.Join(traces, "ours.jsonl"))
	if len(want) < 15 || !slices.Contains(want, "vmx.set_option synctime 0 1\x00") || !slices.Contains(want, "guestlib.info.get 3") {
		t.Errorf("Debian's trace lacks the toolbox requests: %q", want)
	}
	if !slices.Equal(want, got) {
		t.Errorf("the host received different requests:\nDebian's: %q\nours:     %q", want, got)
	}
}

// toolboxRequests are the RPCIs a trace holds, as sent (NULs included),
// with SetGuestInfo's NIC payload (this machine's) cut after its header.
func toolboxRequests(t *testing.T, path string) []string {
	t.Helper()
	var reqs []string
	for _, m := range testutil.ReadTrace(t, path) {
		if m.Ch != "rpci" || m.From != "guest" {
			continue
		}
		s := string(m.Msg)
		if strings.HasPrefix(s, "SetGuestInfo  10 ") {
			s = "SetGuestInfo  10 ..."
		}
		reqs = append(reqs, s)
	}
	return reqs
}

// TestToolboxCmdHotReload: `vmware-toolbox-cmd script shutdown set`
// edits the tools.conf a running vmtoolsd uses; vmtoolsd rereads it
// without a signal and the next halt runs the new script.
func TestToolboxCmdHotReload(t *testing.T) {
	sim := testutil.StartSim(t)
	ctl := vmxsim.NewCtl(sim.Dir)
	v := startVmtoolsd(t, sim, "", nil)
	testutil.WaitFor(t, 10*time.Second, "statechange capability", func() bool {
		return slices.Contains(state(t, ctl).Capabilities, "tools.capability.statechange ")
	})
	os.WriteFile(filepath.Join(v.conf, "tools.conf"), []byte("# kept\n[logging]\nvmsvc.level = debug\n"), 0o644)
	testutil.WaitFor(t, 10*time.Second, "first reload", func() bool { return strings.Count(v.out.String(), "tools.conf reloaded") >= 1 })
	script := filepath.Join(v.conf, "failing-poweroff")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 7\n"), 0o755)
	env := []string{"GOVMTOOLS_RPC=" + sim.Mode(), "GOVMTOOLS_CONF_DIR=" + v.conf}
	cmd := exec.Command(filepath.Join(sim.Bin, "vmware-toolbox-cmd"), "script", "shutdown", "set", script)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script shutdown set: %v %s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(v.conf, "tools.conf"))
	if want := "# kept\n[logging]\nvmsvc.level = debug\n\n[powerops]\npoweroff-script=" + script + "\n"; string(got) != want {
		t.Fatalf("tools.conf after the edit:\n%s\nwant:\n%s", got, want)
	}
	testutil.WaitFor(t, 10*time.Second, "reload after the edit", func() bool { return strings.Count(v.out.String(), "tools.conf reloaded") >= 2 })
	if reply, err := ctl.Power(t.Context(), "halt"); err != nil || reply != "OK " {
		t.Fatalf("halt: %q %v", reply, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the script's failure reported", func() bool {
		sc := state(t, ctl).Power.LastStateChange
		return sc != nil && *sc == vmxsim.StateChange{State: 1, Success: false}
	})
}

// TestToolboxCmdPeerDiskWiper: on a host that allows shrinking
// (vmxsim run --disk-wiper), Debian's and ours list the same shrinkable
// mount points of this machine and give the same answers for a loop file
// system (not on a disk device: "not shrinkable", 69) and for
// shrinkonly; ours asks the host the same number of times.
func TestToolboxCmdPeerDiskWiper(t *testing.T) {
	p := testutil.Peer(t)
	mnt, _ := testutil.LoopFS(t)
	run := func(bin string, env []string) (results []string, asks float64) {
		tr := testutil.StartTrap(t, "--disk-wiper")
		for _, args := range [][]string{{"disk", "list"}, {"disk", "wipe", mnt}, {"disk", "shrink", mnt}, {"disk", "wipe", mnt + "/nosuch"}} {
			out, errOut, code := tr.RunEnv(t, env, bin, args...)
			results = append(results, fmt.Sprintf("%q: exit %d\nstdout %q\nstderr %q", args, code, strings.ReplaceAll(out, bin, "vmware-toolbox-cmd"), strings.ReplaceAll(errOut, bin, "vmware-toolbox-cmd")))
		}
		host, _ := tr.State(t)["host"].(map[string]any)
		asks, _ = host["wiperAsks"].(float64)
		return results, asks
	}
	theirs, theirAsks := run(p.Bin("vmware-toolbox-cmd"), p.Env)
	ours, ourAsks := run(filepath.Join(testutil.Binaries(t), "vmware-toolbox-cmd"), nil)
	for i := range theirs {
		if theirs[i] != ours[i] {
			t.Errorf("Debian's:\n%s\nours:\n%s", theirs[i], ours[i])
		}
	}
	if theirAsks != ourAsks || theirAsks == 0 {
		t.Errorf("disk.wiper.enable asked %v times by Debian's, %v by ours", theirAsks, ourAsks)
	}
}
