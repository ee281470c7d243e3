package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
)

// testVersion is the version the test packages carry.
const testVersion = "0.0.1-test.1+gabcdef"

var (
	buildOnce sync.Once
	builtDir  string
	builtErr  error
	built     map[string]string // "deb/amd64" -> path
)

// packages builds the four packages once per test process.
func packages(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		builtDir, builtErr = os.MkdirTemp("", "govmtools-dist-")
		if builtErr != nil {
			return
		}
		var paths []string
		paths, builtErr = Build(context.Background(), Options{
			Root: testutil.ModuleRoot(t), Out: builtDir, Version: testVersion,
			Arches: []string{"amd64", "arm64"}, Formats: []string{"deb", "rpm"},
			Maintainer: "govmtools tests <tests@govmtools.invalid>", MTime: time.Unix(1700000000, 0),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		built = map[string]string{}
		for _, p := range paths {
			format := strings.TrimPrefix(filepath.Ext(p), ".")
			arch := "amd64"
			if strings.Contains(p, "arm64") || strings.Contains(p, "aarch64") {
				arch = "arm64"
			}
			built[format+"/"+arch] = p
		}
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "DEBIAN_FRONTEND=noninteractive"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func need(t *testing.T, tool, pkg string) {
	t.Helper()
	_, err := exec.LookPath(tool)
	testutil.Require(t, err == nil, tool, "apt-get install "+pkg+" (scripts/test-deps.d/60-packaging.sh)")
}

// TestPackagesBuild: the four packages build, and every binary in them is
// a static executable for the package's architecture.
func TestPackagesBuild(t *testing.T) {
	need(t, "dpkg-deb", "dpkg")
	need(t, "rpm2cpio", "rpm2cpio")
	bins, err := UserBinaries(testutil.ModuleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(bins, "vmtoolsd") || slices.Contains(bins, "vmxsim") {
		t.Fatalf("user binaries %q", bins)
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	interpreter := map[string]string{"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}
	if !slices.ContainsFunc(bins, func(b string) bool { return Cgo[b] }) {
		t.Fatalf("no cgo binary (vmware-vix-helper) among the user binaries %q", bins)
	}
	for _, key := range []string{"deb/amd64", "deb/arm64", "rpm/amd64", "rpm/arm64"} {
		p := packages(t)[key]
		if p == "" {
			t.Fatalf("no %s package in %v", key, packages(t))
		}
		dir := t.TempDir()
		if strings.HasPrefix(key, "deb") {
			mustRun(t, "dpkg-deb", "-x", p, dir)
		} else {
			// rpmpack's cpio has absolute names: never let cpio write
			// outside dir.
			mustRun(t, "sh", "-c", `cd "$1" && rpm2cpio "$2" | cpio -idm --quiet --no-absolute-filenames`, "sh", dir, p)
		}
		arch := strings.Split(key, "/")[1]
		for _, b := range bins {
			f, err := elf.Open(filepath.Join(dir, "usr/bin", b))
			if err != nil {
				t.Fatalf("%s: %s: %v", key, b, err)
			}
			interp := ""
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					b, _ := io.ReadAll(prog.Open())
					interp = strings.TrimRight(string(b), "\x00")
				}
			}
			switch {
			case Cgo[b]:
				// The cgo helper: dynamically linked against libpam,
				// through the architecture's own loader.
				if interp != interpreter[arch] {
					t.Errorf("%s: %s has interpreter %q, want %q", key, b, interp, interpreter[arch])
				}
				libs, err := f.ImportedLibraries()
				if err != nil || !slices.Contains(libs, "libpam.so.0") {
					t.Errorf("%s: %s links %q (%v), not libpam.so.0", key, b, libs, err)
				}
				// Hardened: a PIE, with full RELRO (bind now).
				flags1, _ := f.DynValue(elf.DT_FLAGS_1)
				if f.Type != elf.ET_DYN || len(flags1) != 1 || flags1[0]&uint64(elf.DF_1_PIE) == 0 || flags1[0]&uint64(elf.DF_1_NOW) == 0 {
					t.Errorf("%s: %s is %v with DT_FLAGS_1 %#x, want a PIE bound now", key, b, f.Type, flags1)
				}
			case interp != "":
				t.Errorf("%s: %s is dynamically linked (%s)", key, b, interp)
			}
			if m := machine[arch]; f.Machine != m {
				t.Errorf("%s: %s is for %v", key, b, f.Machine)
			}
			f.Close()
			for _, doc := range []string{"usr/share/man/man1/" + b + ".1.gz", "usr/share/bash-completion/completions/" + b} {
				if _, err := os.Stat(filepath.Join(dir, doc)); err != nil {
					t.Errorf("%s: %v", key, err)
				}
			}
		}
	}
}

// TestLintian: lintian reports no error on either .deb (the overrides
// shipped in the package say why each overridden tag does not apply).
func TestLintian(t *testing.T) {
	need(t, "lintian", "lintian")
	for _, key := range []string{"deb/amd64", "deb/arm64"} {
		out, _ := run(t, "lintian", "--allow-root", "--tag-display-limit", "0", packages(t)[key])
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "E: ") {
				t.Errorf("%s: %s", key, line)
			}
		}
		t.Logf("%s lintian:\n%s", key, out)
	}
}

// TestRPM: rpmlint reports no error (packaging/data/rpmlintrc filters
// what does not apply, with reasons), and rpm reads the relations, the
// scripts, the config files and the file list the layout promises.
func TestRPM(t *testing.T) {
	need(t, "rpm", "rpm")
	need(t, "rpmlint", "rpmlint")
	root := testutil.ModuleRoot(t)
	for _, key := range []string{"rpm/amd64", "rpm/arm64"} {
		p := packages(t)[key]
		out, err := run(t, "rpmlint", "-r", filepath.Join(root, "packaging/data/rpmlintrc"), p)
		if err != nil || !strings.Contains(out, " 0 errors") {
			t.Errorf("%s rpmlint: %v\n%s", key, err, out)
		}
		t.Logf("%s rpmlint:\n%s", key, out)
		query := func(args ...string) string { return mustRun(t, "rpm", append([]string{"-qp"}, append(args, p)...)...) }
		for flag, want := range map[string]string{
			"--requires":  "fuse3",
			"--provides":  "open-vm-tools",
			"--obsoletes": "open-vm-tools",
			"--conflicts": "open-vm-tools",
		} {
			if got := strings.Fields(query(flag)); !slices.Contains(got, want) {
				t.Errorf("%s %s: %q lacks %s", key, flag, got, want)
			}
		}
		scripts := query("--scripts")
		for _, want := range []string{
			"postinstall scriptlet", `UNITS="open-vm-tools.service vmware-kmsgdump.service"`, "systemctl --no-reload preset $UNITS",
			"preuninstall scriptlet", "disable --now",
			"postuninstall scriptlet", "try-restart",
		} {
			if !strings.Contains(scripts, want) {
				t.Errorf("%s scripts lack %q:\n%s", key, want, scripts)
			}
		}
		list := strings.Fields(query("-l"))
		for _, want := range append(expectedFiles(t, "/usr/lib/systemd/system"), "/usr/share/licenses/govmtools/LICENSE") {
			if !slices.Contains(list, want) {
				t.Errorf("%s lacks %s", key, want)
			}
		}
		// tools.conf and statechange.subr are %config(noreplace).
		flags := query("--qf", `[%{FILENAMES} %{FILEFLAGS:fflags}\n]`)
		for _, f := range []string{"/etc/vmware-tools/tools.conf", "/etc/vmware-tools/statechange.subr"} {
			if !strings.Contains(flags, f+" cn\n") {
				t.Errorf("%s: %s is not %%config(noreplace):\n%s", key, f, flags)
			}
		}
		if arch := strings.TrimSpace(query("--qf", "%{ARCH}")); arch != map[string]string{"rpm/amd64": "x86_64", "rpm/arm64": "aarch64"}[key] {
			t.Errorf("%s: arch %s", key, arch)
		}
	}
}

// expectedFiles are paths every package must hold, units under unitDir.
func expectedFiles(t *testing.T, unitDir string) []string {
	bins, err := UserBinaries(testutil.ModuleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/etc/vmware-tools/tools.conf", "/etc/vmware-tools/statechange.subr",
		"/etc/vmware-tools/poweron-vm-default", "/etc/vmware-tools/poweroff-vm-default",
		"/etc/vmware-tools/resume-vm-default", "/etc/vmware-tools/suspend-vm-default",
		"/etc/vmware-tools/scripts/vmware/network",
		"/usr/lib/systemd/system-preset/80-govmtools.preset",
		"/etc/pam.d/vmtoolsd",
	}
	for _, u := range Units {
		want = append(want, unitDir+"/"+u.Name)
	}
	for _, b := range bins {
		want = append(want, "/usr/bin/"+b, "/usr/share/man/man1/"+b+".1.gz", "/usr/share/bash-completion/completions/"+b)
	}
	return want
}

// TestHelperPackaged: every package ships vmware-vix-helper beside
// vmtoolsd (where vmtoolsd looks for it) as root:root 0755, the PAM
// service file as a configuration file, and depends on what the helper
// links: libpam0g and libc6 of at least the newest GLIBC_ version the
// helper imports (deb), pam (rpm).
func TestHelperPackaged(t *testing.T) {
	need(t, "dpkg-deb", "dpkg")
	need(t, "rpm", "rpm")
	const helper = "/usr/bin/vmware-vix-helper"
	if !Cgo["vmware-vix-helper"] {
		t.Fatal("vmware-vix-helper is not a cgo binary of the packages")
	}
	for _, key := range []string{"deb/amd64", "deb/arm64"} {
		p := packages(t)[key]
		listing := mustRun(t, "dpkg-deb", "-c", p)
		var line string
		for _, l := range strings.Split(listing, "\n") {
			if strings.HasSuffix(l, " ."+helper) {
				line = l
			}
		}
		if f := strings.Fields(line); len(f) < 2 || f[0] != "-rwxr-xr-x" || f[1] != "root/root" {
			t.Errorf("%s: %s is %q, want -rwxr-xr-x root/root", key, helper, line)
		}
		if !strings.Contains(listing, " ./etc/pam.d/vmtoolsd\n") {
			t.Errorf("%s: no /etc/pam.d/vmtoolsd", key)
		}
		if pamd := mustRun(t, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO ./etc/pam.d/vmtoolsd`, "sh", p); !strings.Contains(pamd, "@include common-auth") {
			t.Errorf("%s: /etc/pam.d/vmtoolsd is not Debian's:\n%s", key, pamd)
		}
		if conf := mustRun(t, "sh", "-c", `dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles`, "sh", p); !strings.Contains(conf, "/etc/pam.d/vmtoolsd\n") {
			t.Errorf("%s: /etc/pam.d/vmtoolsd is not a conffile:\n%s", key, conf)
		}
		dir := t.TempDir()
		mustRun(t, "dpkg-deb", "-x", p, dir)
		need, err := GlibcVersion(filepath.Join(dir, helper))
		if err != nil || need == "" {
			t.Fatalf("%s: the helper's GLIBC_ version: %q %v", key, need, err)
		}
		deps := strings.Split(strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", p, "Depends")), ", ")
		if !slices.Contains(deps, "libpam0g (>= 1.5.2)") {
			t.Errorf("%s: Depends %q lacks libpam0g", key, deps)
		}
		i := slices.IndexFunc(deps, func(d string) bool { return strings.HasPrefix(d, "libc6 (>= ") })
		if i < 0 {
			t.Errorf("%s: Depends %q lacks libc6", key, deps)
		} else if v := strings.TrimSuffix(strings.TrimPrefix(deps[i], "libc6 (>= "), ")"); versionLess(v, need) {
			t.Errorf("%s: %s but the helper needs GLIBC_%s", key, deps[i], need)
		}
	}
	for _, key := range []string{"rpm/amd64", "rpm/arm64"} {
		p := packages(t)[key]
		files := mustRun(t, "rpm", "-qp", "--qf", `[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]`, p)
		for _, want := range []string{helper + " -rwxr-xr-x root:root \n", "/etc/pam.d/vmtoolsd -rw-r--r-- root:root cn\n"} {
			if !strings.Contains(files, want) {
				t.Errorf("%s: no %q in\n%s", key, want, files)
			}
		}
		// Linux-PAM's own modules, no distribution's stack.
		pamd := mustRun(t, "sh", "-c", `rpm2cpio "$1" | cpio -i --quiet --to-stdout '*etc/pam.d/vmtoolsd'`, "sh", p)
		var stack []string
		for _, l := range strings.Split(pamd, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && !strings.HasPrefix(f[0], "#") {
				stack = append(stack, f[0]+" "+f[1]+" "+f[2])
			}
		}
		if !slices.Equal(stack, []string{"auth required pam_shells.so", "auth required pam_unix.so", "account required pam_nologin.so", "account required pam_unix.so"}) {
			t.Errorf("%s: /etc/pam.d/vmtoolsd:\n%s", key, pamd)
		}
		if req := strings.Fields(mustRun(t, "rpm", "-qp", "--requires", p)); !slices.Contains(req, "pam") {
			t.Errorf("%s: requires %q, not pam", key, req)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"2.17", "2.34", true}, {"2.34", "2.17", false}, {"2.9", "2.10", true}, {"2.34", "2.34", false}, {"2.3", "2.3.4", true}, {"3", "2.99", false}} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
