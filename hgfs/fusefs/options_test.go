package fusefs

import (
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	o := DefaultOptions()
	err := o.Parse("rw,nodev,nosuid,allow_other,defaults", "uid=1000,gid=100,umask=022,fmask=0133,dmask=0002",
		"attr_timeout=0.5,entry_timeout=2,cache=none,max_write=65536,ro,default_permissions,_netdev,x-systemd.automount")
	if err != nil {
		t.Fatal(err)
	}
	if !o.AllowOther || *o.UID != 1000 || *o.GID != 100 || o.Umask != 0o22 || o.Fmask != 0o133 || o.Dmask != 2 ||
		o.AttrTimeout != 500*time.Millisecond || o.EntryTimeout != 2*time.Second || o.Cache != CacheNone ||
		o.MaxWrite != 65536 || !o.ReadOnly || !o.DefaultPermissions {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"umask=9", "uid=x", "cache=sometimes", "max_write=10", "frobnicate", "attr_timeout=-1"} {
		o := DefaultOptions()
		if err := o.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
