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
		for _, b := range bins {
			f, err := elf.Open(filepath.Join(dir, "usr/bin", b))
			if err != nil {
				t.Fatalf("%s: %s: %v", key, b, err)
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s: %s is dynamically linked", key, b)
				}
			}
			if m := machine[strings.Split(key, "/")[1]]; f.Machine != m {
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
	}
	for _, u := range Units {
		want = append(want, unitDir+"/"+u.Name)
	}
	for _, b := range bins {
		want = append(want, "/usr/bin/"+b, "/usr/share/man/man1/"+b+".1.gz", "/usr/share/bash-completion/completions/"+b)
	}
	return want
}
