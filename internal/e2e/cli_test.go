package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// commands lists the binaries in cmd/.
func commands(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(testutil.ModuleRoot(t), "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) < 7 {
		t.Fatalf("only %d commands in cmd/: %v", len(names), names)
	}
	return names
}

// TestCLIConvention runs every binary in cmd/ as a user first would:
// --help prints the usage once, to stdout, and exits 0; --version prints
// one line, "NAME (govmtools) VERSION[, detail]", with the same VERSION
// for every binary; a flag that does not exist prints one line naming it
// and the hint to --help, to stderr, and exits 2.
func TestCLIConvention(t *testing.T) {
	bin := testutil.Binaries(t)
	versions := map[string]string{}
	for _, name := range commands(t) {
		path := filepath.Join(bin, name)
		if name == "vmware-toolbox-cmd" {
			t.Run(name, func(t *testing.T) { versions[name] = toolboxCmdConvention(t, path) })
			continue
		}
		t.Run(name+"/help", func(t *testing.T) {
			out, errOut, code := testutil.RunBinary(t, path, "--help")
			first, _, _ := strings.Cut(out, "\n")
			if code != 0 || errOut != "" || !strings.Contains(strings.ToLower(first), "usage") || strings.Count(out, first) != 1 {
				t.Fatalf("--help: exit %d, want 0 with the usage once on stdout\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
		t.Run(name+"/version", func(t *testing.T) {
			out, errOut, code := testutil.RunBinary(t, path, "--version")
			line := strings.TrimSuffix(out, "\n")
			v, ok := strings.CutPrefix(line, name+" (govmtools) ")
			v, _, _ = strings.Cut(v, ",")
			if code != 0 || errOut != "" || !ok || strings.Contains(line, "\n") || v == "" || strings.Contains(v, " ") {
				t.Fatalf("--version: exit %d, want 0 and one line %q\nstdout:\n%s\nstderr:\n%s", code, name+" (govmtools) VERSION", out, errOut)
			}
			versions[name] = v
		})
		t.Run(name+"/badflag", func(t *testing.T) {
			out, errOut, code := testutil.RunBinary(t, path, "--no-such-flag")
			lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			if code != 2 || out != "" || len(lines) != 2 || !strings.HasPrefix(lines[0], name+": ") || !strings.Contains(lines[0], "no-such-flag") || !strings.Contains(lines[1], name+" --help") {
				t.Fatalf("--no-such-flag: exit %d, want 2 with one line naming the flag and a hint to --help on stderr\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
	seen := map[string][]string{}
	for name, v := range versions {
		seen[v] = append(seen[v], name)
	}
	if len(seen) > 1 {
		t.Errorf("binaries disagree on the version: %v", seen)
	}
}

// toolboxCmdConvention holds vmware-toolbox-cmd to open-vm-tools'
// convention instead, which scripts depend on (docs/toolbox-cmd.md):
// --help prints the usage once to stdout and exits 0; --version prints
// "12.2.0.0 (govmtools VERSION)"; a bad option prints getopt's line and
// "Try 'NAME -h' for more information." to stderr and exits 1. Outside a
// VM it refuses everything, as open-vm-tools does, so it runs against a
// simulator here. It returns VERSION.
func toolboxCmdConvention(t *testing.T, path string) string {
	sim := testutil.StartSim(t)
	run := func(args ...string) (string, string, int) {
		return testutil.RunBinary(t, "env", append([]string{"GOVMTOOLS_RPC=" + sim.Mode(), path}, args...)...)
	}
	out, errOut, code := run("--help")
	first, _, _ := strings.Cut(out, "\n")
	if code != 0 || errOut != "" || !strings.HasPrefix(first, "Usage: "+path+" <command>") || strings.Count(out, first) != 1 {
		t.Errorf("--help: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = run("--version")
	v, ok := strings.CutPrefix(strings.TrimSuffix(out, "\n"), "12.2.0.0 (govmtools ")
	v, ok2 := strings.CutSuffix(v, ")")
	if code != 0 || errOut != "" || !ok || !ok2 || v == "" || strings.Contains(v, " ") {
		t.Errorf("--version: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = run("--no-such-flag")
	if want := path + ": unrecognized option '--no-such-flag'\nTry '" + path + " -h' for more information.\n"; code != 1 || out != "" || errOut != want {
		t.Errorf("--no-such-flag: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return v
}

// TestVmtoolsdBadLogLevel: a wrong --log-level lists the valid levels.
func TestVmtoolsdBadLogLevel(t *testing.T) {
	_, errOut, code := testutil.RunBinary(t, filepath.Join(testutil.Binaries(t), "vmtoolsd"), "--log-level", "loud")
	if code != 2 || !strings.Contains(errOut, `"loud"`) || !strings.Contains(errOut, "debug, info, warn, error") {
		t.Fatalf("--log-level loud: exit %d %q", code, errOut)
	}
}

// TestThinMains: every cmd/*/main.go reads in one screen or two (at most
// 150 lines) and no function under cmd/ is longer than 60 lines; the
// work lives in packages.
func TestThinMains(t *testing.T) {
	root := testutil.ModuleRoot(t)
	for _, name := range commands(t) {
		dir := filepath.Join(root, "cmd", name)
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, f)
			if filepath.Base(f) == "main.go" {
				if n := fset.File(file.Pos()).LineCount(); n > 150 {
					t.Errorf("%s: %d lines, want at most 150", rel, n)
				}
			}
			ast.Inspect(file, func(n ast.Node) bool {
				var body *ast.BlockStmt
				what := "a function literal"
				switch fn := n.(type) {
				case *ast.FuncDecl:
					body, what = fn.Body, fn.Name.Name
				case *ast.FuncLit:
					body = fn.Body
				}
				if body != nil {
					start, end := fset.Position(n.Pos()).Line, fset.Position(body.End()).Line
					if lines := end - start + 1; lines > 60 {
						t.Errorf("%s:%d: %s is %d lines, want at most 60", rel, start, what, lines)
					}
				}
				return true
			})
		}
	}
}
