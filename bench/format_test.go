package main

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestFailedMeasurementIsAnError: a benchmark that failed prints an
// error row after what it did measure, and main exits non-zero.
func TestFailedMeasurementIsAnError(t *testing.T) {
	var b bytes.Buffer
	ok := writeRows(&b, "hgfs", []row{{"a", "1 ms", "2 ms", "n"}}, errors.New("vmxsim ctl state: exit status 1 | x"))
	if ok {
		t.Error("writeRows reported success for a failed benchmark")
	}
	want := "| a | 1 ms | 2 ms | n |\n| hgfs | error | | vmxsim ctl state: exit status 1 / x |\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	b.Reset()
	if !writeRows(&b, "x", []row{{"a", "1", "2", "n"}}, nil) || strings.Contains(b.String(), "error") {
		t.Errorf("a benchmark that succeeded: %q", b.String())
	}
}

// TestRoundTripsNeverZeroOnFailure: a `ctl state` that fails or lacks
// the counter is an error, and a workload whose counter fails has no
// result.
func TestRoundTripsNeverZeroOnFailure(t *testing.T) {
	if n, err := parseRoundTrips([]byte(`{"hgfs":{"roundTrips":42}}`)); n != 42 || err != nil {
		t.Errorf("parse: %d %v", n, err)
	}
	if n, err := parseRoundTrips([]byte(`{"hgfs":{"roundTrips":0}}`)); n != 0 || err != nil {
		t.Errorf("a measured 0: %d %v", n, err)
	}
	for _, bad := range []string{``, `{}`, `{"hgfs":{}}`, `not json`} {
		if _, err := parseRoundTrips([]byte(bad)); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
	// A vmxsim whose ctl fails.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "vmxsim"), []byte("#!/bin/sh\necho no state >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	trips := tripCounter(context.Background(), &env{bin: bin}, t.TempDir())
	if _, err := trips(); err == nil {
		t.Fatal("a failed `ctl state` read as a count")
	}
	res, names, err := runHGFSTarget(context.Background(), hgfsTarget{name: "native", dir: t.TempDir(), trips: trips}, "")
	if err == nil || res != nil || names != nil {
		t.Fatalf("a failed counter gave results %v %v (%v)", res, names, err)
	}
}

// TestWriteOutcome: the 1 MiB write cells say what the write did.
func TestWriteOutcome(t *testing.T) {
	if got := writeOutcome(nil); got != "succeeds" {
		t.Error(got)
	}
	if got := writeOutcome(&os.PathError{Op: "write", Path: "/m/big", Err: syscall.EIO}); got != "fails: input/output error" {
		t.Error(got)
	}
}

// TestNoLiteralCells: no row of the bench's source has a figure written
// into its govmtools or reference cell. A string constant there is only
// "—" (nothing measured, with the reason after it), and a published
// figure goes through cited(), so that the table says it was not
// measured here.
func TestNoLiteralCells(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	rows, cites := 0, 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkRow := func(lit *ast.CompositeLit) {
			rows++
			for i, el := range lit.Elts {
				field := []string{"What", "Ours", "Reference", "Notes"}[min(i, 3)]
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					field, el = kv.Key.(*ast.Ident).Name, kv.Value
				}
				if field != "Ours" && field != "Reference" {
					continue
				}
				switch v := el.(type) {
				case *ast.BasicLit:
					s, _ := strconv.Unquote(v.Value)
					if !strings.HasPrefix(s, "—") {
						t.Errorf("%s: %s cell is the literal %s", fset.Position(v.Pos()), field, v.Value)
					}
				case *ast.CallExpr:
					if id, ok := v.Fun.(*ast.Ident); ok && id.Name == "cited" {
						if field != "Reference" {
							t.Errorf("%s: a cited figure in the govmtools column", fset.Position(v.Pos()))
						}
						cites++
					}
				}
			}
		}
		isRow := func(e ast.Expr) bool { id, ok := e.(*ast.Ident); return ok && id.Name == "row" }
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			if isRow(lit.Type) {
				checkRow(lit)
			}
			// []row{{...}, ...}: the elements' type is elided.
			if at, ok := lit.Type.(*ast.ArrayType); ok && isRow(at.Elt) {
				for _, el := range lit.Elts {
					if el, ok := el.(*ast.CompositeLit); ok && el.Type == nil {
						checkRow(el)
					}
				}
			}
			return true
		})
	}
	if rows < 10 || cites == 0 {
		t.Fatalf("found %d rows and %d cited cells: the check no longer sees the table", rows, cites)
	}
	if got := cited("1 ms", "x#1"); got != "cited: 1 ms (x#1)" {
		t.Errorf("cited = %q", got)
	}
}

// TestStepWanted: -hgfs-steps picks workloads by any of its words; empty
// runs them all.
func TestStepWanted(t *testing.T) {
	defer func(s string) { hgfsSteps = s }(hgfsSteps)
	hgfsSteps = ""
	if !stepWanted("create 10000 files") {
		t.Error("no -hgfs-steps skipped a workload")
	}
	hgfsSteps = "sequential,tar"
	for name, want := range map[string]bool{
		"256 MiB sequential write (1 MiB writes)": true,
		"tar extract of a 2000-file source tree":  true,
		"create 10000 files":                      false,
	} {
		if stepWanted(name) != want {
			t.Errorf("-hgfs-steps %s: %q wanted %v", hgfsSteps, name, !want)
		}
	}
}
