package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "datamap.meta"), []byte("datamap ./rpc/datamap .* 12 30\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "datamap.json"), []byte(`{"files":[{"file_name":"packet.go","mutations":[
		{"type":"CONDITIONALS_BOUNDARY","status":"LIVED","line":62,"column":36},
		{"type":"CONDITIONALS_NEGATION","status":"LIVED","line":64,"column":3},
		{"type":"CONDITIONALS_NEGATION","status":"KILLED","line":62,"column":36},
		{"type":"ARITHMETIC_BASE","status":"TIMED OUT","line":41,"column":9},
		{"type":"ARITHMETIC_BASE","status":"NOT COVERED","line":41,"column":49}]}]}`), 0o644)
	explain := filepath.Join(dir, "why.txt")
	os.WriteFile(explain, []byte("# c\ndatamap packet.go:62:36 CONDITIONALS_BOUNDARY len == cap there: same branch\n"), 0o644)
	runs, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	reasons, err := loadReasons(explain)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if n := write(&b, runs, reasons); n != 1 {
		t.Errorf("%d unexplained, want 1", n)
	}
	out := b.String()
	for _, want := range []string{
		"| datamap (`./rpc/datamap`) | `.*` | 1 | 2 | 1 | 1 | 0 | 50.0% | 12 s | 30 |",
		"| datamap | `packet.go:62:36` | CONDITIONALS_BOUNDARY | len == cap there: same branch |",
		"| datamap | `packet.go:64:3` | CONDITIONALS_NEGATION | UNEXPLAINED |",
		"Unexplained survivors: 1.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
