package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/hgfs/fusefs"
	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
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
	testutil.WaitFor(t, 10*time.Second, "the warning", func() bool { return strings.Contains(e.logs(), "permission checks are off") })
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

// errnoOf is the errno an application sees for err (0 for none).
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(1 << 20) // not an errno at all
}

// onlyEIOOrENOENT fails unless err is nil, EIO or ENOENT.
func onlyEIOOrENOENT(t *testing.T, what string, err error) {
	t.Helper()
	if e := errnoOf(err); e != 0 && e != syscall.EIO && e != syscall.ENOENT {
		t.Errorf("%s: %v (errno %d), want only EIO or ENOENT", what, err, e)
	}
}

// pastEntryTimeout is a wait after which the kernel's entries of a
// mount with the default timeouts have expired.
var pastEntryTimeout = fusefs.DefaultOptions().EntryTimeout + 500*time.Millisecond

// TestHGFSFaultsNoStaleEntries runs the four fault runs against our
// client: a mangled CREATE_DIR reply (the directory was made), the VMX
// killed during a write, the share disabled, and the HGFS server
// restarted. Applications see only EIO or ENOENT, nothing stale stays
// cached, and the outage is logged once with its cause.
func TestHGFSFaultsNoStaleEntries(t *testing.T) {
	testutil.RequireFUSE(t)
	share := t.TempDir()
	sim := testutil.StartSim(t, "--share", "s="+share)
	log := filepath.Join(t.TempDir(), "client.log")
	m := hgfswork.Ours(sim.Bin, sim.Dir, log)
	mnt := t.TempDir()
	if err := m.Mount(t.Context(), ".host:/s", mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hgfswork.Unmount(mnt); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("client log:\n%s", b)
		}
	})
	ctl := func(args ...string) {
		t.Helper()
		if _, errOut, code := testutil.RunBinary(t, filepath.Join(sim.Bin, "vmxsim"), append([]string{"ctl", "--dir", sim.Dir}, args...)...); code != 0 {
			t.Fatalf("vmxsim ctl %v: %s", args, errOut)
		}
	}
	// getattrs counts the GETATTR requests the host has answered.
	getattrs := func() uint64 {
		t.Helper()
		st, err := vmxsim.NewCtl(sim.Dir).State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st.HGFS.Requests["GETATTR_V3"]
	}

	// 1. A mangled CREATE_DIR reply: the host made the directory. Its
	// absence was known (a listing and a negative lookup) before.
	os.ReadDir(mnt)
	d := filepath.Join(mnt, "d")
	if _, err := os.Stat(d); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat before: %v", err)
	}
	ctl("hgfs", "fault", "truncate", "1", "CREATE_DIR_V3")
	// The client asks the host whether the directory was made: success
	// (it was), or EIO when it cannot tell.
	err := os.Mkdir(d, 0o755)
	if e := errnoOf(err); e != 0 && e != syscall.EIO {
		t.Fatalf("mkdir with a mangled reply: %v, want success or EIO", err)
	}
	if fi, err := os.Stat(filepath.Join(share, "d")); err != nil || !fi.IsDir() {
		t.Fatalf("the host did not make the directory: %v", err)
	}
	// At once, no waiting out a cache: the directory is there.
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		t.Errorf("stat right after the mangled mkdir: %v (a stale negative entry)", err)
	}
	if err := os.Mkdir(d, 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir again: %v, want EEXIST", err)
	}
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("in d"), 0o644); err != nil {
		t.Errorf("create in the directory: %v", err)
	}
	if !slices.Contains(dirNames(t, mnt), "d") {
		t.Errorf("listing lacks d: %q", dirNames(t, mnt))
	}

	// A mangled DELETE_DIR reply: the directory is gone at once.
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	ctl("hgfs", "fault", "truncate", "1", "DELETE_DIR_V3")
	err = os.Remove(filepath.Join(d, "sub"))
	onlyEIOOrENOENT(t, "rmdir with a mangled reply", err)
	if _, err := os.Stat(filepath.Join(d, "sub")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat after the mangled rmdir: %v, want ENOENT (the host removed it)", err)
	}

	// 2. The share disabled: ENOENT (or EIO), then back. The wait is
	// what is under test: the kernel's entries for d and d/f expire, so
	// the stat looks the names up on the disabled share, which answers
	// them "not found", and no such answer may stay cached once the
	// share is back (right after it, within the negative timeout).
	ctl("share", "disable", "s")
	time.Sleep(pastEntryTimeout)
	lookups := getattrs()
	_, err = os.Stat(filepath.Join(d, "f"))
	onlyEIOOrENOENT(t, "stat on a disabled share", err)
	if getattrs() == lookups {
		t.Fatal("the stat on the disabled share did not ask the host: the kernel's entry had not expired, and the run tests nothing")
	}
	_, err = os.ReadFile(filepath.Join(d, "f"))
	onlyEIOOrENOENT(t, "read on a disabled share", err)
	err = os.WriteFile(filepath.Join(mnt, "new-while-disabled"), nil, 0o644)
	onlyEIOOrENOENT(t, "create on a disabled share", err)
	// A file the host gains meanwhile: not found twice while the share
	// is off, there the moment it is back.
	os.WriteFile(filepath.Join(share, "made-while-disabled"), nil, 0o644)
	for range 2 {
		_, err = os.Stat(filepath.Join(mnt, "made-while-disabled"))
		onlyEIOOrENOENT(t, "stat on a disabled share", err)
	}
	ctl("share", "enable", "s")
	if b, err := os.ReadFile(filepath.Join(d, "f")); err != nil || string(b) != "in d" {
		t.Errorf("after the share came back: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "made-while-disabled")); err != nil {
		t.Errorf("a file made on the host while the share was off, after it came back: %v", err)
	}

	// 3. The HGFS server restarted: at most one EIO, then it works, also
	// for names whose entries expired (looked up in a new session).
	ctl("hgfs", "restart")
	time.Sleep(pastEntryTimeout)
	_, err = os.ReadDir(d)
	onlyEIOOrENOENT(t, "readdir after an HGFS restart", err)
	if b, err := os.ReadFile(filepath.Join(d, "f")); err != nil || string(b) != "in d" {
		t.Errorf("after the HGFS restart: %q %v", b, err)
	}

	// 4. The VMX killed during a write, then back.
	f, err := os.OpenFile(filepath.Join(mnt, "w"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte("x"), 64<<10)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := f.Write(block); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	sim.Stop(t)
	var werr error
	select {
	case werr = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the write did not fail once the VMX was gone")
	}
	if errnoOf(werr) != syscall.EIO {
		t.Errorf("write while the VMX is gone: %v, want EIO", werr)
	}
	for i := range 3 {
		_, err := os.Stat(filepath.Join(mnt, fmt.Sprintf("gone-%d", i)))
		onlyEIOOrENOENT(t, "stat while the VMX is gone", err)
		_, err = os.ReadDir(d)
		onlyEIOOrENOENT(t, "readdir while the VMX is gone", err)
	}
	testutil.StartSimDir(t, sim.Dir, "--share", "s="+share)
	testutil.WaitFor(t, 20*time.Second, "the mount to work again", func() bool {
		b, err := os.ReadFile(filepath.Join(d, "f"))
		return err == nil && string(b) == "in d"
	})
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("ok"), 0o644); err != nil {
		t.Errorf("write after the VMX came back: %v", err)
	}
	// The host's size, not a stale one, once the VMX is back.
	hostSize := must(os.Stat(filepath.Join(share, "w"))).Size()
	if fi, err := os.Stat(filepath.Join(mnt, "w")); err != nil || fi.Size() != hostSize {
		t.Errorf("w on the mount: %v %v, the host has %d bytes", fi.Size(), err, hostSize)
	}
	b, _ := os.ReadFile(log)
	if n := strings.Count(string(b), "cannot reach the host"); n != 1 {
		t.Errorf("the outage logged %d times, want once:\n%s", n, b)
	} else if i := strings.Index(string(b), "cannot reach the host"); !strings.Contains(strings.SplitN(string(b[i:]), "\n", 2)[0], `err="`) {
		// The cause depends on when the VMX died: refused, reset, gone.
		t.Errorf("the outage's cause is not in the log:\n%s", b)
	}
}

// TestHGFSLostCreateRenameReplies: a create or a rename whose reply is
// mangled after the host carried it out leaves no stale entry. The
// client asks the host what became of the request: the application gets
// the outcome (EIO only when the host cannot tell, which it can here),
// and at once, without waiting out a cache, the mount shows what the
// host has.
func TestHGFSLostCreateRenameReplies(t *testing.T) {
	e := newHGFSEnv(t, ours)
	mnt := e.mount(t, ".host:/s")
	host := func(name string) string { return filepath.Join(e.share, name) }

	// Create: the name's absence was known (a listing and a negative
	// lookup) before.
	os.ReadDir(mnt)
	c := filepath.Join(mnt, "c")
	if _, err := os.Stat(c); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat before: %v", err)
	}
	e.ctl(t, "hgfs", "fault", "truncate", "1", "OPEN_V3")
	f, err := os.OpenFile(c, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	// The host answers again: the client can ask it, so the outcome, not
	// EIO.
	if err != nil {
		t.Errorf("create with a mangled reply: %v, want success (the host made the file)", err)
	}
	if fi, err := os.Stat(c); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("stat right after the mangled create: %v (a stale negative entry)", err)
	}
	if _, err := os.Stat(host("c")); err != nil {
		t.Fatalf("the host did not make the file: %v", err)
	}
	if f != nil {
		if _, err := f.Write([]byte("through the handle")); err != nil {
			t.Errorf("write to the file the mangled create opened: %v", err)
		}
		f.Close()
		if b := must(os.ReadFile(host("c"))); string(b) != "through the handle" {
			t.Errorf("host has %q", b)
		}
	}
	if _, err := os.OpenFile(c, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("exclusive create again: %v, want EEXIST", err)
	}
	if !slices.Contains(dirNames(t, mnt), "c") {
		t.Errorf("listing lacks c: %q", dirNames(t, mnt))
	}

	// Rename onto a free name and over an existing file: the kernel held
	// both names (a positive and a negative entry, or two positive ones).
	os.WriteFile(host("a"), []byte("A"), 0o644)
	os.WriteFile(host("old"), []byte("OLD"), 0o644)
	for _, to := range []string{"b", "old"} {
		from := filepath.Join(mnt, "a")
		// The host made a behind the mount's back: it shows once the
		// negative timeout has passed.
		testutil.WaitFor(t, 10*time.Second, "the host's a to show", func() bool {
			_, err := os.ReadFile(from)
			return err == nil
		})
		os.Stat(filepath.Join(mnt, to))
		e.ctl(t, "hgfs", "fault", "truncate", "1", "RENAME_V3")
		if err := os.Rename(from, filepath.Join(mnt, to)); err != nil {
			t.Errorf("rename to %s with a mangled reply: %v, want success (the host renamed it)", to, err)
		}
		if _, err := os.Stat(from); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat of a right after the mangled rename to %s: %v, want ENOENT (a stale entry)", to, err)
		}
		if b, err := os.ReadFile(filepath.Join(mnt, to)); err != nil || string(b) != "A" {
			t.Errorf("%s right after the mangled rename: %q %v, want the renamed file", to, b, err)
		}
		if b, err := os.ReadFile(host(to)); err != nil || string(b) != "A" {
			t.Fatalf("the host did not rename a to %s: %q %v", to, b, err)
		}
		os.WriteFile(host("a"), []byte("A"), 0o644)
	}
}
