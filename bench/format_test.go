package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
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
