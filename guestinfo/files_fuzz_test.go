package guestinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles adds every file under testdata/dir (recursively) as a seed.
func seedFiles(f *testing.F, dir string) {
	filepath.WalkDir(filepath.Join("testdata", dir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
}

// fakeRoot writes content at rel under a new root and returns a System
// reading from it.
func fakeRoot(t *testing.T, rel string, content []byte) *System {
	root := t.TempDir()
	p := filepath.Join(root, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return &System{Root: root}
}

// FuzzMountInfo: any /proc/self/mountinfo gives mounts with the fields
// the line holds; malformed lines are skipped, never a panic.
func FuzzMountInfo(f *testing.F) {
	seedFiles(f, "mountinfo")
	f.Add([]byte("36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"))
	f.Add([]byte("1 2 3 4 5 6 - \n\\\\\\0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range ParseMountInfo(b) {
			if strings.ContainsAny(m.Dev, " \n") || strings.Contains(m.FSType, "\n") {
				t.Fatalf("mount %+v", m)
			}
		}
	})
}

// FuzzResolvConf: any resolv.conf gives valid addresses only.
func FuzzResolvConf(f *testing.F) {
	seedFiles(f, "resolv")
	f.Add([]byte("nameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch a.example b.example\n# nameserver 1.2.3.4\ndomain x ; y\n"))
	f.Add([]byte("nameserver\nnameserver 999.1.1.1\nsearch\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := parseResolv(b)
		for _, a := range r.servers {
			if !a.IsValid() || a.Zone() != "" {
				t.Fatalf("server %v", a)
			}
		}
		if r.domain != "" && len(r.search) > 0 {
			t.Fatalf("both domain %q and search %q", r.domain, r.search)
		}
	})
}

// FuzzOSRelease: any os-release gives bounded values or "invalid".
func FuzzOSRelease(f *testing.F) {
	seedFiles(f, "os")
	f.Add([]byte("NAME=\"Photon OS\"\nVERSION=\"5.0\"\nID=photon\nPRETTY_NAME=\"VMware Photon OS/Linux\"\n"))
	f.Add([]byte("NAME=\"unterminated\nVERSION_ID=1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fakeRoot(t, "etc/os-release", b)
		values, distro, ok := s.osRelease()
		if !ok {
			return
		}
		for k, v := range values {
			if len(v) > len(b) {
				t.Fatalf("%s = %d bytes from a %d-byte file", k, len(v), len(b))
			}
		}
		if distro == "" && len(values) == 0 {
			t.Fatal("ok without values")
		}
	})
}

// FuzzUptime: any /proc/uptime gives a non-negative uptime or an error.
func FuzzUptime(f *testing.F) {
	f.Add([]byte("350735.47 234388.90\n"))
	f.Add([]byte("12.3 4\n"))
	f.Add([]byte("-1.00 0\n"))
	f.Add([]byte("99999999999999999999.99 0"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := fakeRoot(t, "proc/uptime", b).Uptime()
		if err == nil && cs < 0 {
			t.Fatalf("uptime %d from %q", cs, b)
		}
	})
}
