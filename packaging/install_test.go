package packaging

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// debRoot copies the cached Debian root (scripts/test-deps.d/60-packaging.sh)
// for one test and checks that no service can start in it: a policy-rc.d
// that refuses every start, and no /run/systemd/system (so the maintainer
// scripts and deb-systemd-invoke see no running systemd).
func debRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.Require(t, runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64", "amd64 or arm64", "the packages exist for these only")
	need(t, "dpkg", "dpkg")
	need(t, "systemctl", "systemd")
	need(t, "systemd-analyze", "systemd")
	cache := filepath.Join(testutil.ModuleRoot(t), ".cache", "pkgroot")
	_, err := os.Stat(filepath.Join(cache, "ok"))
	testutil.Require(t, err == nil, "the cached Debian root "+cache, "make test-deps (scripts/test-deps.d/60-packaging.sh)")
	root := filepath.Join(t.TempDir(), "root")
	mustRun(t, "cp", "-a", filepath.Join(cache, "root"), root)
	if b, err := os.ReadFile(filepath.Join(root, "usr/sbin/policy-rc.d")); err != nil || !strings.Contains(string(b), "exit 101") {
		t.Fatalf("the root has no policy-rc.d refusing starts (%v): rebuild it with make test-deps", err)
	}
	if _, err := os.Stat(filepath.Join(root, "run/systemd/system")); err == nil {
		t.Fatal("the root has /run/systemd/system: maintainer scripts would think systemd runs")
	}
	return root
}

// noProcessIn fails if any process runs with root as its root directory
// or from an executable inside it: the maintainer scripts started nothing
// that outlived them.
func noProcessIn(t *testing.T, root string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		r, _ := os.Readlink(p + "/root")
		exe, _ := os.Readlink(p + "/exe")
		if r == root || strings.HasPrefix(exe, root+"/") {
			cmdline, _ := os.ReadFile(p + "/cmdline")
			pid, _ := strconv.Atoi(filepath.Base(p))
			t.Errorf("process %d runs in the test root: %q", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// snapshot lists every path in root except dpkg's own records and logs.
func snapshot(t *testing.T, root string) map[string]bool {
	t.Helper()
	skip := []string{"var/lib/dpkg", "var/log", "var/cache/debconf", "var/cache/ldconfig"}
	m := map[string]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		m[rel] = true
		return nil
	})
	return m
}

func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	return mustRun(t, "dpkg", append([]string{"--root=" + root, "--force-unsafe-io"}, args...)...)
}

func status(t *testing.T, root, pkg string) string {
	t.Helper()
	out, _ := run(t, "dpkg-query", "--root="+root, "-W", "-f=${Status}", pkg)
	return strings.TrimSpace(out)
}

func hostDeb(t *testing.T) string {
	return packages(t)["deb/"+runtime.GOARCH]
}

// checkInstalled: every file of the package is in place, the units are
// enabled as the preset says (the aliases too), systemd-analyze verify
// finds nothing to say about any unit, and vmtoolsd --version runs.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	if s := status(t, root, Name); s != "install ok installed" {
		t.Fatalf("%s: %s", Name, s)
	}
	listed := strings.Fields(mustRun(t, "dpkg-query", "--root="+root, "-L", Name))
	for _, want := range expectedFiles(t, "/lib/systemd/system") {
		if !slices.Contains(listed, want) {
			t.Errorf("the package lacks %s", want)
		}
	}
	for _, p := range listed {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("not in place: %v", err)
		}
	}
	for unit, want := range map[string]string{
		"open-vm-tools.service":   "enabled",
		"vmtoolsd.service":        "alias",
		"vmware-kmsgdump.service": "enabled",
		"mnt-hgfs.mount":          "disabled",
		"mnt-hgfs.automount":      "disabled",
	} {
		out, _ := run(t, "systemctl", "--root="+root, "is-enabled", unit)
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("%s is %q, want %q", unit, got, want)
		}
	}
	var units []string
	for _, u := range Units {
		units = append(units, "/lib/systemd/system/"+u.Name)
	}
	out, err := run(t, "systemd-analyze", append([]string{"verify", "--man=no", "--root=" + root}, units...)...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify --root: %v\n%s", err, out)
	}
	// vmware-vix-helper is installed beside vmtoolsd, where vmtoolsd
	// looks for it, root's and writable by root only.
	if st, err := os.Stat(filepath.Join(root, "usr/bin/vmware-vix-helper")); err != nil {
		t.Error(err)
	} else if sys := st.Sys().(*syscall.Stat_t); st.Mode() != 0o755 || sys.Uid != 0 || sys.Gid != 0 {
		t.Errorf("vmware-vix-helper: %v uid %d gid %d, want -rwxr-xr-x root:root", st.Mode(), sys.Uid, sys.Gid)
	}
	// Its libraries resolve in the root (the package's dependencies).
	if out := mustRun(t, "chroot", root, "ldd", "/usr/bin/vmware-vix-helper"); !strings.Contains(out, "libpam.so.0 => /") || strings.Contains(out, "not found") {
		t.Errorf("ldd vmware-vix-helper in the root:\n%s", out)
	}
	// The only run of vmtoolsd in these tests: --version, chrooted.
	if out := mustRun(t, "chroot", root, "/usr/bin/vmtoolsd", "--version"); !strings.Contains(out, "(govmtools) "+testVersion) {
		t.Errorf("vmtoolsd --version: %q", out)
	}
	b, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/open-vm-tools.service"))
	if !strings.Contains(string(b), "govmtools") || !strings.Contains(string(b), "\nAlias=vmtoolsd.service\n") {
		t.Errorf("open-vm-tools.service is not ours:\n%s", b)
	}
	noProcessIn(t, root)
}

// TestDebInstallPurge: the .deb installs into a fresh Debian root with no
// prompt and no service started, and purging it leaves no file behind.
func TestDebInstallPurge(t *testing.T) {
	root := debRoot(t)
	deb := hostDeb(t)
	before := snapshot(t, root)
	start := time.Now()
	out := dpkg(t, root, "-i", deb)
	t.Logf("dpkg -i (%v):\n%s", time.Since(start), out)
	checkInstalled(t, root)

	// An upgrade (the same package again) keeps a changed tools.conf.
	conf := filepath.Join(root, "etc/vmware-tools/tools.conf")
	os.WriteFile(conf, []byte("[guestinfo]\npoll-interval = 5\n"), 0o644)
	dpkg(t, root, "-i", deb)
	if b, _ := os.ReadFile(conf); string(b) != "[guestinfo]\npoll-interval = 5\n" {
		t.Errorf("reinstall replaced a changed tools.conf: %q", b)
	}
	noProcessIn(t, root)

	// Remove, then purge: nothing of the package is left.
	dpkg(t, root, "-r", Name)
	if _, err := os.Stat(filepath.Join(root, "usr/bin/vmtoolsd")); err == nil {
		t.Error("remove left /usr/bin/vmtoolsd")
	}
	dpkg(t, root, "-P", Name)
	if s := status(t, root, Name); s != "" && !strings.Contains(s, "not-installed") && !strings.Contains(s, "no packages found") {
		t.Errorf("after purge: %q", s)
	}
	after := snapshot(t, root)
	var left []string
	for p := range after {
		if !before[p] {
			left = append(left, p)
		}
	}
	slices.Sort(left)
	if len(left) > 0 {
		t.Errorf("purge left %d paths behind: %q", len(left), left)
	}
	noProcessIn(t, root)
	t.Logf("install, reinstall, remove, purge: %v", time.Since(start))
}

// TestDebReplacesOpenVMTools: installed over Debian's open-vm-tools, the
// .deb replaces it (Conflicts + Replaces: dpkg removes it and takes over
// its files, units and conffiles) with no prompt, the service stays
// enabled under the same names, and removing ours lets Debian's come back.
func TestDebReplacesOpenVMTools(t *testing.T) {
	testutil.Require(t, runtime.GOARCH == "amd64", "amd64", "the cached open-vm-tools .deb is amd64")
	peer, _ := filepath.Glob(filepath.Join(testutil.ModuleRoot(t), ".cache", "peer", "open-vm-tools_*_amd64.deb"))
	testutil.Require(t, len(peer) == 1, "Debian's open-vm-tools .deb in .cache/peer", "make test-deps (scripts/test-deps.d/20-peer.sh)")
	root := debRoot(t)
	deb := hostDeb(t)
	// Its libraries are not in the small root: their absence does not
	// change how dpkg hands files over, so the dependencies are forced.
	dpkg(t, root, "--force-depends", "-i", peer[0])
	if s := status(t, root, "open-vm-tools"); s != "install ok installed" {
		t.Fatalf("open-vm-tools: %q", s)
	}
	noProcessIn(t, root)
	// The administrator's tools.conf (open-vm-tools' format, which ours
	// reads) is kept: dpkg hands the conffile over and keeps local
	// changes (--force-confold answers its question without a prompt).
	conf := filepath.Join(root, "etc/vmware-tools/tools.conf")
	local := "[guestinfo]\nprimary-nics = eth0\n"
	os.WriteFile(conf, []byte(local), 0o644)
	start := time.Now()
	out := dpkg(t, root, "--force-confdef", "--force-confold", "-i", deb)
	t.Logf("dpkg -i over open-vm-tools (%v):\n%s", time.Since(start), out)
	if s := status(t, root, "open-vm-tools"); s == "install ok installed" {
		t.Fatalf("open-vm-tools is still installed")
	}
	checkInstalled(t, root)
	if b, _ := os.ReadFile(conf); string(b) != local {
		t.Errorf("the local tools.conf was replaced:\n%s", b)
	}
	for _, p := range []string{"etc/systemd/system/open-vm-tools.service.requires/vgauth.service", "etc/systemd/system/vgauth.service"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("open-vm-tools' vgauth.service is still wired in: %s", p)
		}
	}

	// And back: remove ours, install Debian's again.
	dpkg(t, root, "-P", Name)
	dpkg(t, root, "--force-depends", "-i", peer[0])
	if s := status(t, root, "open-vm-tools"); s != "install ok installed" {
		t.Fatalf("open-vm-tools back: %q", s)
	}
	if b, err := os.ReadFile(filepath.Join(root, "usr/bin/vmtoolsd")); err != nil || strings.Contains(string(b), "govmtools") {
		t.Errorf("after switching back /usr/bin/vmtoolsd is not Debian's (%v)", err)
	}
	out, _ = run(t, "systemctl", "--root="+root, "is-enabled", "open-vm-tools.service")
	if strings.TrimSpace(out) != "enabled" {
		t.Errorf("Debian's open-vm-tools.service after switching back: %q", out)
	}
	noProcessIn(t, root)
}
