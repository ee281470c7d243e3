package testutil

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/govmtools/govmtools"

// CodecPackages are the pure wire codecs: no I/O, no globals beyond error
// sentinels, standard library only. Both the guest side and vmxsim may
// import them; they are the only module packages vmxsim may import besides
// its own. Add new codecs here.
var CodecPackages = []string{
	"rpc/datamap",
	"guestinfo/infoproto",
	"hgfs/hgfsproto",
	"kmsgdump/kmsg",
	"vmtoolsd/vix/vixproto",
}

// PAMPackage is the one package that links PAM (cgo), and PAMBinary the
// one binary that may depend on it.
const (
	PAMPackage = "vmtoolsd/vix/pamauth"
	PAMBinary  = "cmd/vmware-vix-helper"
)

// simMayImport are the module packages besides the codecs that vmxsim may
// import: guest-free leaves every binary shares.
var simMayImport = map[string]bool{
	"internal/version": true, // vmxsim --version
}

// codecStdAllowed is the standard library a codec may use.
var codecStdAllowed = map[string]bool{
	"bytes": true, "encoding/base64": true, "encoding/binary": true, "encoding/hex": true,
	"encoding/json": true, "errors": true, "fmt": true, "io": true, "math": true,
	"math/bits": true, "net/netip": true, "slices": true, "sort": true, "strconv": true,
	"strings": true, "time": true, "unicode": true, "unicode/utf8": true, "unicode/utf16": true,
	"maps": true, "cmp": true, "iter": true,
}

type goPackage struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
	Standard   bool
}

// platforms are the GOOS/GOARCH pairs the dependency rules are checked
// for: the two Linux targets govmtools ships and one non-Linux GOOS, so
// files behind build constraints are checked too.
var platforms = []struct{ goos, goarch string }{
	{"linux", "amd64"},
	{"linux", "arm64"},
	{"darwin", "amd64"},
}

func listPackages(t *testing.T, args ...string) []goPackage {
	t.Helper()
	return listPackagesFor(t, "", "", args...)
}

// listPackagesFor runs go list for goos/goarch (the host's when empty).
func listPackagesFor(t *testing.T, goos, goarch string, args ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ModuleRoot(t)
	if goos != "" {
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %s/%s: %v\n%s", goos, goarch, err, stderr)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

func isSim(rel string) bool {
	return rel == "vmxsim" || strings.HasPrefix(rel, "vmxsim/") || rel == "cmd/vmxsim"
}

func isCodec(rel string) bool {
	for _, c := range CodecPackages {
		if rel == c {
			return true
		}
	}
	return false
}

// TestDependencyRules enforces the layering rules of docs/architecture.md
// ("Layering rules"): the guest side and vmxsim meet only on the wire,
// codecs are pure, and no production binary carries test code. It checks
// every pair in platforms, since imports differ by build constraint.
func TestDependencyRules(t *testing.T) {
	for _, pl := range platforms {
		t.Run(pl.goos+"_"+pl.goarch, func(t *testing.T) {
			checkDependencyRules(t, listPackagesFor(t, pl.goos, pl.goarch, "./..."))
		})
	}
}

// ruleNames are the module packages the rules name: a rule naming a
// package that was renamed or removed would silently check nothing.
func ruleNames() []string {
	return append([]string{"vmxsim", "cmd/vmxsim", "bench", "rpc/rpctest", "internal/testutil", PAMPackage, PAMBinary}, CodecPackages...)
}

// TestRulesNameExistingPackages fails when a dependency rule names a
// package that no longer exists.
func TestRulesNameExistingPackages(t *testing.T) {
	exists := map[string]bool{}
	for _, p := range listPackages(t, "./...") {
		exists[rel(p.ImportPath)] = true
	}
	for _, n := range ruleNames() {
		if !exists[n] {
			t.Errorf("a dependency rule names %s, which is not a package of the module any more: update the rule", n)
		}
	}
}

func checkDependencyRules(t *testing.T, pkgs []goPackage) {
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			ir := rel(imp)
			switch {
			case isSim(r):
				if !isSim(ir) && !isCodec(ir) && !simMayImport[ir] {
					t.Errorf("%s imports %s: vmxsim may import only codecs (%v)", r, ir, CodecPackages)
				}
			case isSim(ir):
				t.Errorf("%s imports %s: guest-side code never imports vmxsim", r, ir)
			}
			if isCodec(r) && !isCodec(ir) {
				t.Errorf("codec %s imports %s: codecs import only other codecs", r, ir)
			}
		}
		if isCodec(r) {
			for _, imp := range p.Imports {
				if !strings.HasPrefix(imp, module) && !codecStdAllowed[imp] {
					t.Errorf("codec %s imports %s: codecs are pure (no I/O, no OS)", r, imp)
				}
			}
			checkNoGlobals(t, p)
		}
	}

	// Production binaries carry no test code and no simulator.
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		if p.Name != "main" || isSim(r) || r == "bench" {
			continue // the simulator and the benchmark harness are not shipped
		}
		for _, d := range p.Deps {
			dr := rel(d)
			if d == "testing" || dr == "rpc/rpctest" || dr == "internal/testutil" || (strings.HasPrefix(d, module) && isSim(dr)) {
				t.Errorf("binary %s depends on %s", r, d)
			}
			// PAM needs cgo: only the guest-operations helper links it,
			// every other binary stays buildable with CGO_ENABLED=0.
			if dr == PAMPackage && r != PAMBinary {
				t.Errorf("binary %s depends on %s: only %s may (cgo)", r, d, PAMBinary)
			}
		}
	}
}

// checkNoGlobals allows package-level variables only for error sentinels
// (names starting with Err or err).
func checkNoGlobals(t *testing.T, p goPackage) {
	fset := token.NewFileSet()
	for _, f := range p.GoFiles {
		file, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if !strings.HasPrefix(n.Name, "Err") && !strings.HasPrefix(n.Name, "err") && n.Name != "_" {
						t.Errorf("codec %s: package-level variable %s in %s (codecs hold no globals)", rel(p.ImportPath), n.Name, f)
					}
				}
			}
		}
	}
}

// TestPackageDocs requires a package comment on every package.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t, "./...") {
		fset := token.NewFileSet()
		documented := false
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc != nil && strings.TrimSpace(file.Doc.Text()) != "" {
				documented = true
				break
			}
		}
		if !documented {
			t.Errorf("package %s has no doc comment saying what it owns", rel(p.ImportPath))
		}
	}
}
