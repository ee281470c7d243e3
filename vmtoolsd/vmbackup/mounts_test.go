package vmbackup

import (
	"github.com/govmtools/govmtools/guestinfo"

	"os"
	"slices"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	f, err := os.Open("testdata/mountinfo.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, bad, err := ParseMountInfo(f)
	if err != nil || bad != 2 || len(mounts) != 12 {
		t.Fatalf("%d mounts, %d bad, %v", len(mounts), bad, err)
	}
	if m := mounts[7]; m.Path != "/srv/my data" || m.Dev != "8:3" || m.FSType != "ext4" || m.Source != "/dev/sda3" {
		t.Errorf("escaped mount %+v", m)
	}
	list, skipped := SelectMounts(mounts, "")
	var paths []string
	for _, m := range list {
		paths = append(paths, m.Path)
	}
	// Last mounted first; network, pseudo and duplicate superblocks out.
	want(t, "freeze order", paths, []string{"/tmp/loop.mnt", "/srv/my data", "/home", "/"})
	if len(skipped) != 8 {
		t.Errorf("skipped %+v", skipped)
	}
	list, _ = SelectMounts(mounts, "/tmp/*,,/srv/my data")
	paths = nil
	for _, m := range list {
		paths = append(paths, m.Path)
	}
	want(t, "with excludes", paths, []string{"/home", "/"})
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		ok   bool
	}{
		{"/opt/data", "/opt/data", true},
		{"/opt/app/project-*", "/opt/app/project-x/y", true}, // '*' matches '/'
		{"/opt/?", "/opt/a", true},
		{"/opt/?", "/opt/ab", false},
		{"*", "/", true},
		{" /opt", "/opt", false}, // spaces are not trimmed
		{"/a*b*c", "/axxbyyc", true},
		{"/a*b*c", "/axxbyy", false},
		{"", "", true},
	} {
		if got := guestinfo.Wildcard(tc.p, tc.s); got != tc.ok {
			t.Errorf("guestinfo.Wildcard(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
	if !slices.Equal(splitExcluded("a,,b, c"), []string{"a", "b", " c"}) {
		t.Error(splitExcluded("a,,b, c"))
	}
}
