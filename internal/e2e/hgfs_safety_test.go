package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
)

// nobody is the throwaway uid (and gid) the multi-user tests act as.
const nobody = 65534

// multiUserShare fills the host side of share "s" with root's files:
// secret (0600), pub (0644) and directory d (0755) holding d/inner
// (0644); the share's root is 0755.
func multiUserShare(t *testing.T, share string) {
	t.Helper()
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"secret", 0o600}, {"pub", 0o644}, {"d/inner", 0o644}} {
		p := filepath.Join(share, f.name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("root's "+f.name+"\n"), f.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, f.mode)
	}
	os.Chmod(filepath.Join(share, "d"), 0o755)
	os.Chmod(share, 0o755)
}

// publicMount mounts share s with opts on a mount point other users can
// reach, unmounting it at the end.
func publicMount(t *testing.T, e *hgfsEnv, opts ...string) string {
	t.Helper()
	mnt, err := os.MkdirTemp("", "hgfs-safety-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(mnt, 0o755)
	t.Cleanup(func() { os.Remove(mnt) })
	if err := e.mounter.Mount(t.Context(), ".host:/s", mnt, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hgfswork.Unmount(mnt); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("client log:\n%s", e.logs())
		}
	})
	return mnt
}

// asUser runs a shell command in dir as uid:gid and returns "" on
// success or the errno name the command's error message names.
func asUser(t *testing.T, uid uint32, dir, script string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return ""
	}
	for _, e := range []syscall.Errno{syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.EIO, syscall.EROFS} {
		if strings.Contains(strings.ToLower(string(out)), e.Error()) {
			return errnoName(e)
		}
	}
	return fmt.Sprintf("%v: %s", err, out)
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EACCES:
		return "EACCES"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EIO:
		return "EIO"
	case syscall.EROFS:
		return "EROFS"
	}
	return e.Error()
}

// multiUserCase is one operation, as a shell command run in the mount,
// and the result each user must get ("" = success).
type multiUserCase struct {
	op, script   string
	root, nobody string
}

// The modes forbid uid 65534 every read of secret, every write to pub or
// in the root's directories, and chmod (not the owner: EPERM, as POSIX
// says). Root may do all of it. Successful root runs change the share, so
// the list is ordered.
var multiUserCases = []multiUserCase{
	{"read 0600", "cat secret", "", "EACCES"},
	{"read 0644", "cat pub", "", ""},
	{"list 0755", "ls d", "", ""},
	{"read in 0755", "cat d/inner", "", ""},
	{"append 0644", "echo more >> pub", "", "EACCES"},
	{"truncate 0644", ": > d/inner", "", "EACCES"},
	{"create in 0755", "echo new > d/new-$(id -u)", "", "EACCES"},
	{"mkdir in 0755", "mkdir sub-$(id -u)", "", "EACCES"},
	{"chmod 0644", "chmod 0666 pub", "", "EPERM"},
	{"chmod 0600", "chmod 0644 secret", "", "EPERM"},
	{"rename in 0755", "mv d/inner d/moved-$(id -u)", "", "EACCES"},
	{"unlink in 0755", "rm -f pub", "", "EACCES"},
	{"rmdir 0755", "rm -rf d", "", "EACCES"},
}

// TestHGFSAllowOtherPermissions: on an allow_other mount (as the shipped
// mnt-hgfs.mount makes it) uid 65534 gets exactly what the modes allow
// and root everything, against the same mount.
func TestHGFSAllowOtherPermissions(t *testing.T) {
	testutil.RequireRoot(t)
	e := newHGFSEnv(t, ours)
	multiUserShare(t, e.share)
	mnt := publicMount(t, e, "allow_other")
	if mi := must(os.ReadFile("/proc/self/mountinfo")); !strings.Contains(mountLine(string(mi), mnt), "default_permissions") {
		t.Fatalf("allow_other mount without default_permissions: %s", mountLine(string(mi), mnt))
	}
	// uid 65534 first, while everything is in place; then root.
	for _, c := range multiUserCases {
		if got := asUser(t, nobody, mnt, c.script); got != c.nobody {
			t.Errorf("uid %d: %s (%s): got %q, want %q", nobody, c.op, c.script, got, orOK(c.nobody))
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.share, "pub")); err != nil || string(b) != "root's pub\n" {
		t.Fatalf("host pub after uid %d: %q %v", nobody, b, err)
	}
	for _, c := range multiUserCases {
		if got := asUser(t, 0, mnt, c.script); got != c.root {
			t.Errorf("root: %s (%s): got %q, want %q", c.op, c.script, got, orOK(c.root))
		}
	}
	if _, err := os.Stat(filepath.Join(e.share, "d")); !os.IsNotExist(err) {
		t.Errorf("root's rm -rf d left the host directory: %v", err)
	}
}

func orOK(s string) string {
	if s == "" {
		return "success"
	}
	return s
}

// mountLine is the mountinfo line of mnt.
func mountLine(mountinfo, mnt string) string {
	for l := range strings.SplitSeq(mountinfo, "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == mnt {
			return l
		}
	}
	return ""
}

// TestHGFSMappedOwnerPermissions: with uid=, gid= and umask= the checks
// use what the mount shows: the mapped user owns everything, others get
// nothing with umask=077.
func TestHGFSMappedOwnerPermissions(t *testing.T) {
	testutil.RequireRoot(t)
	e := newHGFSEnv(t, ours)
	multiUserShare(t, e.share)
	mnt := publicMount(t, e, "allow_other,uid=1000,gid=1000,umask=077")
	for _, c := range []multiUserCase{
		{"list the root", "ls " + mnt, "", "EACCES"},
		{"read 0644 shown 0600", "cat " + mnt + "/pub", "", "EACCES"},
	} {
		if got := asUser(t, nobody, "/", c.script); got != c.nobody {
			t.Errorf("uid %d: %s: got %q, want %q", nobody, c.op, got, orOK(c.nobody))
		}
	}
	// uid 1000 is the owner the mount shows: it may read and append
	// (the host, as root, lets it).
	if got := asUser(t, 1000, mnt, "cat secret && echo more >> pub"); got != "" {
		t.Errorf("uid 1000 (the mapped owner): %s", got)
	}
	if b := must(os.ReadFile(filepath.Join(e.share, "pub"))); string(b) != "root's pub\nmore\n" {
		t.Errorf("host pub: %q", b)
	}
}

// TestHGFSAllowRoot: allow_root serves root and the mounting user only.
func TestHGFSAllowRoot(t *testing.T) {
	testutil.RequireRoot(t)
	e := newHGFSEnv(t, ours)
	multiUserShare(t, e.share)
	mnt := publicMount(t, e, "allow_root")
	if got := asUser(t, nobody, mnt, "cat pub"); got != "EACCES" {
		t.Errorf("uid %d on an allow_root mount: %q, want EACCES", nobody, orOK(got))
	}
	if got := asUser(t, 0, mnt, "cat pub secret"); got != "" {
		t.Errorf("root on an allow_root mount: %s", got)
	}
}

// TestHGFSUnsafeNoPermissions: the opt-out says what it does, in its name
// and in the log.
func TestHGFSUnsafeNoPermissions(t *testing.T) {
	testutil.RequireRoot(t)
	e := newHGFSEnv(t, ours)
	multiUserShare(t, e.share)
	mnt := publicMount(t, e, "allow_other,unsafe_no_default_permissions")
	if got := asUser(t, nobody, mnt, "cat secret"); got != "" {
		t.Errorf("uid %d with the checks off: %s (the host decides: it lets the VM read)", nobody, got)
	}
	testutil.WaitFor(t, 5e9, "the warning", func() bool { return strings.Contains(e.logs(), "permission checks are off") })
}

// awkwardNames are names the HGFS escaping must carry unchanged: its
// substitute, escape and protect characters alone and in sequences,
// backslash (a separator on Windows hosts), control bytes and UTF-8.
var awkwardNames = []string{"!", "%", "]", "!%", "]%", "%%", "!]%", "a!%b", "x]%y", "%!%", "back\\slash", "ctl\x01\x1f\x7f", "new\nline", "ünï€😀"}

// TestHGFSAwkwardNames: every awkward name is created, listed, renamed
// and removed under the same name on the host, through our client and
// Debian's vmhgfs-fuse alike; a host file of that name is listed as it.
func TestHGFSAwkwardNames(t *testing.T) {
	for _, c := range mounters() {
		t.Run(c.name, func(t *testing.T) {
			e := newHGFSEnv(t, c)
			// Made on the host before the mount lists anything.
			os.Mkdir(filepath.Join(e.share, "fromhost"), 0o755)
			for _, name := range awkwardNames {
				os.WriteFile(filepath.Join(e.share, "fromhost", name), []byte("host "+name), 0o644)
			}
			mnt := e.mount(t, ".host:/s")
			listed := dirNames(t, filepath.Join(mnt, "fromhost"))
			for _, name := range awkwardNames {
				if !slices.Contains(listed, name) {
					t.Errorf("host file %q not listed: %q", name, listed)
				}
				if b, err := os.ReadFile(filepath.Join(mnt, "fromhost", name)); err != nil || string(b) != "host "+name {
					t.Errorf("host file %q through the mount: %q %v", name, b, err)
				}
				if err := os.Remove(filepath.Join(mnt, "fromhost", name)); err != nil {
					t.Errorf("remove host file %q: %v", name, err)
				}
			}
			if err := os.Remove(filepath.Join(mnt, "fromhost")); err != nil {
				t.Errorf("rmdir fromhost: %v (%q left)", err, hostNames(filepath.Join(e.share, "fromhost")))
			}
			for _, name := range awkwardNames {
				p, host := filepath.Join(mnt, name), filepath.Join(e.share, name)
				if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
					t.Errorf("create %q: %v", name, err)
					continue
				}
				if b, err := os.ReadFile(host); err != nil || string(b) != name {
					t.Errorf("create %q: the host has %v (%q)", name, err, hostNames(e.share))
				}
				if !slices.Contains(dirNames(t, mnt), name) {
					t.Errorf("%q not listed: %q", name, dirNames(t, mnt))
				}
				renamed := "r-" + name + "-r"
				if err := os.Rename(p, filepath.Join(mnt, renamed)); err != nil {
					t.Errorf("rename %q: %v", name, err)
				} else if _, err := os.Stat(filepath.Join(e.share, renamed)); err != nil {
					t.Errorf("rename %q: the host has %q", name, hostNames(e.share))
				}
				if err := os.Remove(filepath.Join(mnt, renamed)); err != nil {
					t.Errorf("remove %q: %v", renamed, err)
				}
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Errorf("mkdir %q: %v", name, err)
				} else if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
					t.Errorf("mkdir %q: the host has %q", name, hostNames(e.share))
				}
				if err := os.Remove(p); err != nil {
					t.Errorf("rmdir %q: %v", name, err)
				}
			}
			if left := hostNames(e.share); len(left) != 0 {
				t.Errorf("left on the host: %q", left)
			}
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func hostNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestHGFSNonCanonicalName: "]]%" would reach the host as "]%" (and be
// listed so): our client refuses to create it and never finds it.
func TestHGFSNonCanonicalName(t *testing.T) {
	e := newHGFSEnv(t, ours)
	mnt := e.mount(t, ".host:/s")
	os.WriteFile(filepath.Join(e.share, "]%"), []byte("x"), 0o644)
	if err := os.WriteFile(filepath.Join(mnt, "]]%"), nil, 0o644); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("create ]]%%: %v, want EINVAL", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "]]%")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat ]]%%: %v, want ENOENT (the host's ]%% is listed as ]%%)", err)
	}
	if got := hostNames(e.share); !slices.Equal(got, []string{"]%"}) {
		t.Errorf("host has %q", got)
	}
}
