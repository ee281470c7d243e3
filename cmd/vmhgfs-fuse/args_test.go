package main

import (
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	// The form mount.fuse3 uses for ".host:/ /mnt/hgfs fuse.vmhgfs-fuse defaults,allow_other".
	a, err := parseArgs([]string{".host:/", "/mnt/hgfs", "-o", "rw,allow_other,rpc=unix:/run/sim"})
	if err != nil || a.source != ".host:/" || a.mountpoint != "/mnt/hgfs" || a.rpc != "unix:/run/sim" || strings.Join(a.opts, "|") != "rw,allow_other" {
		t.Fatalf("%+v %v", a, err)
	}
	// "vmhgfs-fuse /mnt/hgfs fuse defaults,allow_other": no source.
	a, err = parseArgs([]string{"/mnt/hgfs", "-oallow_other", "-f"})
	if err != nil || a.source != "" || a.mountpoint != "/mnt/hgfs" || !a.foreground || a.opts[0] != "allow_other" {
		t.Fatalf("%+v %v", a, err)
	}
	if a, err := parseArgs([]string{"-e"}); err != nil || !a.enabled {
		t.Fatal(a, err)
	}
	for _, bad := range [][]string{{}, {"a", "b", "c"}, {"-x", "/m"}, {"/m", "-o"}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBasePath(t *testing.T) {
	for in, want := range map[string]string{"": "", ".host:/": "", "vmhgfs-fuse": "", ".host:/docs": "docs", ".host:/docs/sub/": "docs/sub", ".host:docs//a": "docs/a"} {
		if got, err := basePath(in); err != nil || got != want {
			t.Errorf("basePath(%q) = %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/dev/sda", ".host:/a/../b"} {
		if _, err := basePath(bad); err == nil {
			t.Errorf("basePath(%q) accepted", bad)
		}
	}
}
