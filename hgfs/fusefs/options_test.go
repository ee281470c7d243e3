package fusefs

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

func TestParseOptions(t *testing.T) {
	o := DefaultOptions()
	err := o.Parse("rw,nodev,nosuid,allow_other,defaults", "uid=1000,gid=100,umask=022,fmask=0133,dmask=0002",
		"attr_timeout=0.5,entry_timeout=2,cache=none,max_write=65536,ro,default_permissions,_netdev,x-systemd.automount,readahead=4096")
	if err != nil {
		t.Fatal(err)
	}
	if !o.AllowOther || *o.UID != 1000 || *o.GID != 100 || o.Umask != 0o22 || o.Fmask != 0o133 || o.Dmask != 2 ||
		o.AttrTimeout != 500*time.Millisecond || o.EntryTimeout != 2*time.Second || o.Cache != CacheNone ||
		o.MaxWrite != 65536 || !o.ReadOnly || !o.DefaultPermissions || o.Readahead != 4096 {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"umask=9", "uid=x", "cache=sometimes", "max_write=10", "frobnicate", "attr_timeout=-1", "readahead=x"} {
		o := DefaultOptions()
		if err := o.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestNewFileDefaults: the attributes of a new file are answered without
// a GETATTR only once the host has shown what it does to every
// permission bit asked for, never under a set-group-ID or unknown parent,
// and every recheckEvery creations the host is asked again.
func TestNewFileDefaults(t *testing.T) {
	f := &FS{attrTimeout: time.Minute}
	parent := &node{fsys: f}
	var pa hgfs.Attr
	pa.SetPerm(0o755)
	parent.remember(pa)
	if _, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o644, 0); ok {
		t.Fatal("answered before learning anything")
	}
	host := func(perm uint32) hgfs.Attr {
		a := hgfs.Attr{Mask: hgfsproto.AttrValidAllPerms | hgfsproto.AttrValidUserID | hgfsproto.AttrValidGroupID, UserID: 501, GroupID: 20}
		a.SetPerm(perm &^ 0o022) // the host's umask
		return a
	}
	f.learn(hgfsproto.FileTypeRegular, 0o644, host(0o644))
	a, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o644, 0)
	if !ok || a.Perm() != 0o644 || a.UserID != 501 || a.GroupID != 20 || a.Type != hgfsproto.FileTypeRegular {
		t.Fatalf("%v %+v", ok, a)
	}
	// 0666 asks for bits (group and other write) never tried.
	if _, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o666, 0); ok {
		t.Fatal("answered for untried bits")
	}
	f.learn(hgfsproto.FileTypeRegular, 0o666, host(0o666))
	if a, ok := f.newAttr(parent, hgfsproto.FileTypeDirectory, 0o777, 0); ok {
		t.Fatalf("answered for the untried execute bits: %o", a.Perm())
	}
	f.learn(hgfsproto.FileTypeDirectory, 0o777, host(0o777))
	if a, ok := f.newAttr(parent, hgfsproto.FileTypeDirectory, 0o777, 0); !ok || a.Perm() != 0o755 {
		t.Fatalf("directory: %v %o", ok, a.Perm())
	}
	if a, ok := f.newAttr(parent, hgfsproto.FileTypeSymlink, 0, 7); !ok || a.Perm() != 0o777 || a.Size != 7 {
		t.Fatalf("symlink: %v %+v", ok, a)
	}
	// A host that adds bits (a set-group-ID directory) is not modelled.
	sg := host(0o777)
	sg.SpecialPerms = 2
	f.learn(hgfsproto.FileTypeDirectory, 0o777, sg)
	if _, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o644, 0); ok {
		t.Fatal("answered after the host added bits")
	}
	f.learn(hgfsproto.FileTypeRegular, 0o777, host(0o777))
	pa.SpecialPerms = 2
	parent.remember(pa)
	if _, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o644, 0); ok {
		t.Fatal("answered under a set-group-ID parent")
	}
	pa.SpecialPerms = 0
	parent.remember(pa)
	n := 0
	for ; n < 2*recheckEvery; n++ {
		if _, ok := f.newAttr(parent, hgfsproto.FileTypeRegular, 0o644, 0); !ok {
			break
		}
	}
	if n != recheckEvery {
		t.Fatalf("rechecked after %d creations, want %d", n, recheckEvery)
	}
}

// TestNameSet: a directory's known names answer lookups negatively only
// while fresh, ignoring case and never for non-ASCII names, and follow
// our own creations, removals and renames.
func TestNameSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &FS{negTimeout: time.Hour}
		d := &node{fsys: f}
		if d.surelyAbsent("x") {
			t.Fatal("absent without a name set")
		}
		d.setNames(map[string]bool{"Makefile": true, "a": true})
		for name, absent := range map[string]bool{"x": true, "a": false, "makefile": false, "MAKEFILE": false, "é": false} {
			if d.surelyAbsent(name) != absent {
				t.Errorf("%q: absent %v", name, !absent)
			}
		}
		d.nameAdded("x")
		d.nameAdded("x")
		d.nameRemoved("a")
		if d.surelyAbsent("x") || !d.surelyAbsent("a") {
			t.Fatal("the set did not follow our changes")
		}
		d.nameAdded("A")
		d.nameAdded("a")
		d.nameRemoved("A")
		if d.surelyAbsent("a") {
			t.Fatal("removing A forgot a")
		}
		// The set goes stale once negTimeout has passed (bubble time).
		f.negTimeout = time.Nanosecond
		time.Sleep(time.Millisecond)
		if d.surelyAbsent("zzz") {
			t.Fatal("a stale name set answered")
		}
	})
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/hgfs":             "/mnt/hgfs",
		`/mnt/a\040b`:           "/mnt/a b",
		`/mnt/tab\011and\134bs`: "/mnt/tab\tand\\bs",
		`/mnt/short\04`:         `/mnt/short\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPermissionChecks: a mount other users can reach always has the
// kernel's permission checks, unless the unsafe opt-out is given.
func TestPermissionChecks(t *testing.T) {
	for opts, want := range map[string]bool{
		"":                    false,
		"uid=1000,umask=077":  false,
		"default_permissions": true,
		"allow_other":         true,
		"allow_root":          true,
		"allow_other,uid=1000,gid=1000,umask=077":                      true,
		"allow_other," + UnsafeNoPermissionsOption:                     false,
		"allow_root," + UnsafeNoPermissionsOption:                      false,
		"allow_other,default_permissions," + UnsafeNoPermissionsOption: true,
	} {
		o := DefaultOptions()
		if err := o.Parse(opts); err != nil {
			t.Fatal(err)
		}
		if got := o.Permissions(); got != want {
			t.Errorf("%q: permission checks %v, want %v", opts, got, want)
		}
	}
	o := DefaultOptions()
	o.Parse("allow_root")
	if !o.AllowRoot || o.AllowOther {
		t.Errorf("allow_root parsed as %+v", o)
	}
}
