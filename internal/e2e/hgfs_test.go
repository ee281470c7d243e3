package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/hgfsd"
	"github.com/hanwen/go-fuse/v2/posixtest"
)

// hgfsEnv is a simulator with one writable share "s", and a client that
// mounts it.
type hgfsEnv struct {
	client  *hgfsClient
	dir     string // the simulator's directory (vmxsim ctl --dir)
	bin     string
	share   string // host directory of share "s"
	mounter hgfswork.Mounter
	logs    func() string  // what the client has logged so far
	trap    *testutil.Trap // the trap the client runs under, if it does
	logged  sync.Once      // the client's log is shown once on failure
}

// logOnFailure shows the client's log if the test failed, once for the
// environment however many mounts it made.
func (e *hgfsEnv) logOnFailure(t *testing.T) {
	if t.Failed() {
		e.logged.Do(func() { t.Logf("client log:\n%s", e.logs()) })
	}
}

// hgfsClient is one client the workloads run against and how it reaches
// the simulated VMX.
type hgfsClient struct {
	name string
	// start starts a simulator serving share "s" from share (plus
	// simArgs) and returns the environment.
	start func(t *testing.T, share string, simArgs ...string) *hgfsEnv
	// differs lists this client's documented differences from ours:
	// check name -> the upstream issue. A check listed here asserts the
	// client's known behaviour instead, so a simulator change that breaks
	// the client some other way still fails.
	differs map[string]string
}

// ours is govmtools' vmhgfs-fuse over --rpc unix:DIR to `vmxsim serve`.
var ours = &hgfsClient{
	name: "govmtools",
	start: func(t *testing.T, share string, simArgs ...string) *hgfsEnv {
		sim := testutil.StartSim(t, append([]string{"--share", "s=" + share}, simArgs...)...)
		log := filepath.Join(t.TempDir(), "client.log")
		return &hgfsEnv{dir: sim.Dir, bin: sim.Bin, share: share, mounter: hgfswork.Ours(sim.Bin, sim.Dir, log),
			logs: func() string { b, _ := os.ReadFile(log); return string(b) }}
	},
}

// oursBackdoor is govmtools' vmhgfs-fuse in the foreground under the
// ptrace trap, over the backdoor with its 4 channels: --no-vsock, since
// under the vsock trap (the default) --rpc auto would take vsock
// (TestVSockTrapHGFS covers that path).
var oursBackdoor = &hgfsClient{
	name: "govmtools-backdoor",
	start: func(t *testing.T, share string, simArgs ...string) *hgfsEnv {
		return trapEnv(t, share, append([]string{"--no-vsock"}, simArgs...), "govmtools-backdoor", nil, filepath.Join(testutil.Binaries(t), "vmhgfs-fuse"))
	},
}

// openVMTools is Debian's vmhgfs-fuse (open-vm-tools 12.2.0), in the
// foreground under the ptrace trap (`vmxsim run`), over the backdoor.
var openVMTools = &hgfsClient{
	name: "open-vm-tools",
	start: func(t *testing.T, share string, simArgs ...string) *hgfsEnv {
		peer := testutil.Peer(t)
		return trapEnv(t, share, simArgs, "open-vm-tools", peer.Env, peer.Bin("vmhgfs-fuse"))
	},
	differs: map[string]string{
		"append":           "O_APPEND is not sent to the host; the kernel appends at its cached size, overwriting what the host appended (open-vm-tools PR #801)",
		"largeWrites":      "every write over 65,457 bytes is one request over the VMX's 64 KiB message cap: EIO (open-vm-tools#437); guestinfo.hgfs.packetSize.large=FALSE is the workaround",
		"staleHandles":     "files opened before the host forgot their handles read as empty: failed reads are swallowed and nothing is reopened (open-vm-tools#539)",
		"disabledENOTCONN": "with sharing disabled every operation fails with ENOTCONN (open-vm-tools#248, commit 675c07bb0)",
		"staleSessionEIO":  "the first request after the host restarted fails with EIO while a new session is made",
		"wholeSeconds":     "times are shown in whole seconds (open-vm-tools PR #336)",
		"fmask":            "no fmask/dmask options (open-vm-tools#223, #490)",
		"utimeOmit":        "touch -m sets both times to 1970-01-01 00:00:01: UTIME_OMIT and UTIME_NOW are converted as if they were nanoseconds",
	},
}

// trapEnv starts `vmxsim run` with the share and a mounter that runs argv0
// in the foreground under it (with extra environment env); each daemon is
// waited for at the end of the test, after its mount is gone.
func trapEnv(t *testing.T, share string, simArgs []string, name string, env []string, argv0 string) *hgfsEnv {
	tr := testutil.StartTrap(t, append([]string{"--share", "s=" + share}, simArgs...)...)
	var mu sync.Mutex
	var outputs []func() string
	start := func(env []string, argv ...string) (int, func() string, error) {
		pid, out := tr.Start(t, "/usr/bin/env", slices.Concat(env, argv)...)
		t.Cleanup(func() { tr.Wait(t, pid) })
		mu.Lock()
		outputs = append(outputs, out)
		mu.Unlock()
		return pid, out, nil
	}
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		var b strings.Builder
		for _, o := range outputs {
			b.WriteString(o())
		}
		return b.String()
	}
	return &hgfsEnv{dir: tr.Dir, bin: tr.Bin, share: share, mounter: hgfswork.Foreground(name, start, env, argv0), logs: logs, trap: tr}
}

// mounters are the clients every workload runs against.
func mounters() []*hgfsClient { return []*hgfsClient{ours, oursBackdoor, openVMTools} }

func newHGFSEnv(t *testing.T, c *hgfsClient, simArgs ...string) *hgfsEnv {
	t.Helper()
	testutil.RequireFUSE(t)
	e := c.start(t, t.TempDir(), simArgs...)
	e.client = c
	return e
}

// differs reports whether check is a documented difference of the
// client, logging it.
func (e *hgfsEnv) differs(t *testing.T, check string) bool {
	t.Helper()
	why, ok := e.client.differs[check]
	if ok {
		t.Logf("%s: documented difference of %s: %s", check, e.client.name, why)
	}
	return ok
}

// mount mounts source and registers the unmount (lazy if busy).
func (e *hgfsEnv) mount(t *testing.T, source string, opts ...string) string {
	t.Helper()
	mnt := t.TempDir()
	if err := e.mounter.Mount(t.Context(), source, mnt, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hgfswork.Unmount(mnt); err != nil {
			t.Error(err)
		}
		e.logOnFailure(t)
	})
	return mnt
}

func (e *hgfsEnv) ctl(t *testing.T, args ...string) {
	t.Helper()
	if _, errOut, code := testutil.RunBinary(t, filepath.Join(e.bin, "vmxsim"), append([]string{"ctl", "--dir", e.dir}, args...)...); code != 0 {
		t.Fatalf("vmxsim ctl %v: %s", args, errOut)
	}
}

func TestHGFSWorkloads(t *testing.T) {
	for _, c := range mounters() {
		t.Run(c.name, func(t *testing.T) {
			e := newHGFSEnv(t, c)
			mnt := e.mount(t, ".host:/")
			dir := filepath.Join(mnt, "s")
			t.Run("TarExtract", func(t *testing.T) { workTar(t, e, dir) })
			t.Run("Git", func(t *testing.T) { workGit(t, dir) })
			t.Run("MvOver", func(t *testing.T) { workMvOver(t, e, dir) })
			t.Run("LargeWrites", func(t *testing.T) { workLargeWrites(t, e, dir) })
			t.Run("ShareToggle", func(t *testing.T) { workShareToggle(t, e, dir) })
			t.Run("Setattr", func(t *testing.T) { workSetattr(t, e, dir) })
			t.Run("Masks", func(t *testing.T) { workMasks(t, e) })
		})
	}
}

func workTar(t *testing.T, e *hgfsEnv, dir string) {
	src := t.TempDir()
	if err := hgfswork.MakeSourceTree(src, 400); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "src.tar")
	if err := hgfswork.Tar(tarball, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "tar")
	os.Mkdir(dst, 0o755)
	if err := hgfswork.ExtractTar(tarball, dst); err != nil {
		t.Fatal(err)
	}
	want, err := hgfswork.Checksums(src)
	if err != nil {
		t.Fatal(err)
	}
	delete(want, ".")
	for name, d := range map[string]string{"mount": dst, "host": filepath.Join(e.share, "tar")} {
		got, err := hgfswork.Checksums(d)
		if err != nil {
			t.Fatal(err)
		}
		delete(got, ".")
		if diff := hgfswork.DiffTrees(want, got); diff != "" {
			t.Errorf("%s differs from the original tree:\n%s", name, diff)
		}
	}
}

func workGit(t *testing.T, dir string) {
	if _, err := exec.LookPath("git"); err != nil {
		testutil.Require(t, false, "git", "apt-get install git")
	}
	repo := filepath.Join(dir, "repo")
	os.Mkdir(repo, 0o755)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	git("init", "-q")
	for i := range 30 {
		os.WriteFile(filepath.Join(repo, "f"+string(rune('a'+i%26))+".txt"), bytes.Repeat([]byte{byte('a' + i)}, 100*i), 0o644)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "one")
	os.WriteFile(filepath.Join(repo, "fa.txt"), []byte("changed\n"), 0o644)
	git("commit", "-q", "-am", "two")
	if st := git("status", "--porcelain"); st != "" {
		t.Fatalf("git status after commit: %q", st)
	}
	if out := git("fsck", "--strict"); strings.Contains(out, "error") {
		t.Fatalf("git fsck: %s", out)
	}
	if log := git("log", "--oneline"); strings.Count(log, "\n") != 2 {
		t.Fatalf("git log: %q", log)
	}
}

// workMvOver is open-vm-tools#90: write a file, write a new version
// beside it, mv it over, read the new content at once.
func workMvOver(t *testing.T, e *hgfsEnv, dir string) {
	p := filepath.Join(dir, "TEST")
	for i := range 40 {
		old := bytes.Repeat([]byte("old"), 1000+i)
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, old) {
			t.Fatalf("round %d: read %d bytes %v", i, len(b), err)
		}
		next := bytes.Repeat([]byte("new!"), 10+i*3)
		if err := os.WriteFile(p+".new", next, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mv", p+".new", p).CombinedOutput(); err != nil {
			t.Fatalf("mv: %v %s", err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, next) {
			t.Fatalf("round %d: after mv read %d bytes (want %d): %v", i, len(b), len(next), err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(next)) {
			t.Fatalf("round %d: stale size after mv: %v %v", i, fi.Size(), err)
		}
	}
	// O_APPEND appends at the real end, truncating opens leave no stale size.
	os.WriteFile(p, []byte("0123456789"), 0o644)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("ab"))
	f.Close()
	os.WriteFile(filepath.Join(e.share, "TEST"), append(must(os.ReadFile(filepath.Join(e.share, "TEST"))), "HOST"...), 0o644)
	f, _ = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("cd"))
	f.Close()
	switch b := must(os.ReadFile(filepath.Join(e.share, "TEST"))); {
	case string(b) == "0123456789abHOSTcd":
	case string(b) == "0123456789abcdST" && e.differs(t, "append"):
		// The kernel appended at the size it had cached: the host's
		// "HOST" was overwritten.
	default:
		t.Fatalf("appends: %q", b)
	}
	f, _ = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	f.Write([]byte("x"))
	f.Close()
	if fi, _ := os.Stat(p); fi.Size() != 1 {
		t.Fatalf("size after truncating open: %d", fi.Size())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func workLargeWrites(t *testing.T, e *hgfsEnv, dir string) {
	for _, n := range []int{65457, 65458, 64 << 10, 1 << 20, 3<<20 + 5} {
		if n > 65457 && e.differs(t, "largeWrites") {
			// "f " + 52-byte header + 25-byte WRITE_V3 head + 65458 bytes
			// is one byte over the VMX's 64 KiB message cap.
			f, err := os.Create(filepath.Join(dir, "big"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(make([]byte, n)); !errors.Is(err, syscall.EIO) {
				t.Fatalf("write of %d bytes: %v, want EIO (open-vm-tools#437)", n, err)
			}
			f.Close()
			continue
		}
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*13 + n)
		}
		f, err := os.Create(filepath.Join(dir, "big"))
		if err != nil {
			t.Fatal(err)
		}
		if w, err := f.Write(data); err != nil || w != n {
			t.Fatalf("write of %d bytes: %d %v", n, w, err)
		}
		f.Close()
		if b := must(os.ReadFile(filepath.Join(e.share, "big"))); !bytes.Equal(b, data) {
			t.Fatalf("host copy of a %d-byte write differs (%d bytes)", n, len(b))
		}
		if b := must(os.ReadFile(filepath.Join(dir, "big"))); !bytes.Equal(b, data) {
			t.Fatalf("read back of a %d-byte write differs", n)
		}
	}
}

// workShareToggle: disabling and re-enabling the share, restarting the
// host's HGFS server, and turning sharing off and on keep the mount
// working, with no remount and never ENOTCONN. What the host answered
// while a share or sharing was off is not kept: the listing works the
// moment sharing is back.
func workShareToggle(t *testing.T, e *hgfsEnv, dir string) {
	p := filepath.Join(dir, "keep")
	os.WriteFile(p, []byte("kept content"), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 12)
	// An old handle: read works, or (documented) reads end of file.
	readOld := func(when string) {
		t.Helper()
		n, err := f.ReadAt(buf, 0)
		if err == nil && string(buf[:n]) == "kept content" {
			return
		}
		if n == 0 && errors.Is(err, io.EOF) && e.differs(t, "staleHandles") {
			return
		}
		t.Fatalf("read %s: %q %v", when, buf[:n], err)
	}
	// A mount that looks the share up for the first time while it is
	// disabled (the kernel then holds no entry for it).
	fresh := e.mount(t, ".host:/")
	e.ctl(t, "share", "disable", "s")
	if _, err := os.Stat(filepath.Join(fresh, "s")); err == nil || errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("stat of a disabled share: %v, want ENOENT or EIO", err)
	}
	_, err = os.Stat(filepath.Join(dir, "never-looked-up"))
	if errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("disabled share: %v", err)
	}
	// Once the kernel's entry for the share has expired, a lookup asks
	// the host, which says the share is not there: the mount must not
	// keep that answer once the share is back.
	testutil.WaitFor(t, 10*time.Second, "the mount to see the disabled share gone", func() bool {
		_, err := os.Stat(dir)
		return err != nil
	})
	e.ctl(t, "share", "enable", "s")
	if _, err := os.Stat(filepath.Join(fresh, "s")); err != nil {
		t.Fatalf("stat of the share the moment it is enabled again: %v (a negative entry from the outage)", err)
	}
	readOld("from a file opened before the toggle")
	e.ctl(t, "hgfs", "restart")
	readOld("after a host HGFS restart")
	e.ctl(t, "hgfs", "disable")
	if _, err := os.ReadDir(dir); errors.Is(err, syscall.ENOTCONN) && !e.differs(t, "disabledENOTCONN") {
		t.Fatalf("sharing disabled: %v", err)
	}
	e.ctl(t, "hgfs", "enable")
	_, err = os.ReadDir(dir)
	if errors.Is(err, syscall.EIO) && e.differs(t, "staleSessionEIO") {
		// The request that met STALE_SESSION failed; the client made a
		// new session meanwhile, so the next one works.
		_, err = os.ReadDir(dir)
	}
	if err != nil {
		t.Fatalf("listing after sharing came back: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "after"), []byte("x"), 0o644); err != nil {
		t.Fatalf("write after sharing came back: %v", err)
	}
}

// workSetattr: chmod, truncate and utimens reach the host, times keep
// 100 ns precision, and setting one time leaves the other alone.
func workSetattr(t *testing.T, e *hgfsEnv, dir string) {
	p := filepath.Join(dir, "attrs")
	host := filepath.Join(e.share, "attrs")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2001, 2, 3, 4, 5, 6, 123456700, time.UTC)
	mt := time.Date(2011, 12, 13, 14, 15, 16, 987654300, time.UTC)
	if err := os.Chtimes(p, at, mt); err != nil {
		t.Fatal(err)
	}
	fi := must(os.Stat(host))
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || fi.Size() != 3 || !fi.ModTime().Equal(mt) || !time.Unix(st.Atim.Unix()).Equal(at) {
		t.Fatalf("host sees %v %d mtime %v atime %v", fi.Mode(), fi.Size(), fi.ModTime(), time.Unix(st.Atim.Unix()))
	}
	if fi := must(os.Stat(p)); !fi.ModTime().Equal(mt) {
		if !fi.ModTime().Equal(mt.Truncate(time.Second)) || !e.differs(t, "wholeSeconds") {
			t.Fatalf("mount shows mtime %v, want %v", fi.ModTime(), mt)
		}
	}
	// touch -m: only the modification time changes.
	if out, err := exec.Command("touch", "-m", p).CombinedOutput(); err != nil {
		t.Fatalf("touch -m: %v %s", err, out)
	}
	fi = must(os.Stat(host))
	st = fi.Sys().(*syscall.Stat_t)
	atime := time.Unix(st.Atim.Unix())
	if fi.ModTime().Equal(mt) || !atime.Equal(at) {
		// UTIME_OMIT and UTIME_NOW ((1<<30)-2 and -1) taken as nanoseconds.
		bogus := func(t time.Time) bool { return t.UnixNano() > 1<<30-200 && t.UnixNano() < 1<<30 }
		if bogus(fi.ModTime()) && bogus(atime) && e.differs(t, "utimeOmit") {
			return
		}
		t.Fatalf("touch -m: mtime %v (should have moved), atime %v (should be %v)", fi.ModTime(), atime, at)
	}
}

func workMasks(t *testing.T, e *hgfsEnv) {
	os.MkdirAll(filepath.Join(e.share, "m/d"), 0o777)
	os.Chmod(filepath.Join(e.share, "m/d"), 0o777)
	os.WriteFile(filepath.Join(e.share, "m/f"), nil, 0o666)
	os.Chmod(filepath.Join(e.share, "m/f"), 0o777)
	cases := []struct {
		opts       []string
		file, dirm os.FileMode
	}{
		{nil, 0o777, 0o777},
		{[]string{"umask=022"}, 0o755, 0o755},
		{[]string{"fmask=0133,dmask=0022"}, 0o644, 0o755},
		{[]string{"umask=007,fmask=0111"}, 0o660, 0o770},
	}
	for _, c := range cases {
		if strings.Contains(strings.Join(c.opts, ","), "mask=0") && strings.Contains(strings.Join(c.opts, ","), "fmask") && e.differs(t, "fmask") {
			err := e.mounter.Mount(t.Context(), ".host:/s/m", t.TempDir(), c.opts...)
			if err == nil || !strings.Contains(err.Error(), "unknown option") {
				t.Fatalf("%v: %v, want an unknown option error", c.opts, err)
			}
			continue
		}
		mnt := e.mount(t, ".host:/s/m", append(c.opts, "uid=4321", "gid=8765")...)
		for name, want := range map[string]os.FileMode{"f": c.file, "d": c.dirm} {
			fi, err := os.Stat(filepath.Join(mnt, name))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != want || st.Uid != 4321 || st.Gid != 8765 {
				t.Errorf("%v: %s is %v %d:%d, want %v 4321:8765", c.opts, name, fi.Mode().Perm(), st.Uid, st.Gid, want)
			}
		}
		hgfswork.Unmount(mnt)
	}
}

// TestHGFSPacketSizeSwitch: a VM configured with
// guestinfo.hgfs.packetSize.large = "FALSE" makes open-vm-tools' client
// ask for legacy packets (61,440 bytes of data), the workaround for
// open-vm-tools#437: its 1 MiB writes then succeed against the same
// 64 KiB cap. Ours needs no switch and ignores it.
func TestHGFSPacketSizeSwitch(t *testing.T) {
	for _, c := range mounters() {
		t.Run(c.name, func(t *testing.T) {
			e := newHGFSEnv(t, c, "--guestinfo", "hgfs.packetSize.large=FALSE")
			mnt := e.mount(t, ".host:/s")
			data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
			f, err := os.Create(filepath.Join(mnt, "big"))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.Write(data); err != nil || n != len(data) {
				t.Fatalf("1 MiB write: %d %v", n, err)
			}
			f.Close()
			if b := must(os.ReadFile(filepath.Join(e.share, "big"))); !bytes.Equal(b, data) {
				t.Fatalf("host copy differs (%d bytes)", len(b))
			}
		})
	}
}

// TestHGFSRoundTrips pins what the client saves, counted by the
// simulator: a file created in a directory this mount made costs its
// OPEN_V3 and CLOSE_V3 only (the name is known to be free and the new
// file's attributes are known), a listing one SEARCH_READ per entry
// (pipelined) and nothing per entry for ls -l, and chown to the owner a
// file already has nothing (not even the GETATTR the kernel makes before
// a chown unless the file system clears set-ID bits itself). What the shortcuts must not cost: a name the
// host adds behind our back shows once the negative timeout has passed.
func TestHGFSRoundTrips(t *testing.T) {
	e := newHGFSEnv(t, ours)
	mnt := e.mount(t, ".host:/s")
	requests := hgfsRequests(t, e.dir)
	delta := func(before map[string]uint64) (map[string]uint64, uint64) {
		d, total := map[string]uint64{}, uint64(0)
		for k, v := range requests() {
			if v > before[k] {
				d[k] = v - before[k]
				total += v - before[k]
			}
		}
		return d, total
	}
	dir := filepath.Join(mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first creations teach the client what the host does to new
	// files; then each costs an open and a close.
	hgfswork.CreateFiles(dir, 5)
	before := requests()
	const n = 50
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("g%03d", i)), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if d, total := delta(before); d["OPEN_V3"] != n || total > 2*n+2 {
		t.Errorf("%d creations cost %d round trips: %v", n, total, d)
	}
	// chown to the owner the file has: nothing to send.
	fi := must(os.Stat(filepath.Join(dir, "g000")))
	st := fi.Sys().(*syscall.Stat_t)
	before = requests()
	if err := os.Chown(filepath.Join(dir, "g000"), int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	if d, total := delta(before); total != 0 {
		t.Errorf("a chown to the current owner cost round trips: %v", d)
	}
	// ls -l on a fresh mount: the listing feeds every lstat. Again
	// within the entry timeout: the kernel keeps the listing.
	other := e.mount(t, ".host:/s", "entry_timeout=30", "attr_timeout=30")
	for pass := range 2 {
		before = requests()
		if got, err := hgfswork.ListLong(filepath.Join(other, "d")); err != nil || got != n+5 {
			t.Fatalf("ls -l: %d entries, %v", got, err)
		}
		d, total := delta(before)
		if pass == 0 && (d["SEARCH_READ_V3"] < n+5 || d["GETATTR_V3"] > 2) || pass == 1 && total != 0 {
			t.Errorf("ls -l of %d entries, pass %d: %v", n+5, pass+1, d)
		}
	}
	// A change through the mount is listed at once.
	if err := os.WriteFile(filepath.Join(other, "d", "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := hgfswork.ListLong(filepath.Join(other, "d")); err != nil || got != n+6 {
		t.Fatalf("ls -l after a creation: %d entries, %v", got, err)
	}
	// A file the host creates in the directory we made shows once the
	// mount's negative timeout (1 s) has passed.
	os.WriteFile(filepath.Join(e.share, "d", "from-host"), []byte("h"), 0o644)
	testutil.WaitFor(t, 10*time.Second, "the host's new file to show", func() bool {
		_, err := os.Stat(filepath.Join(dir, "from-host"))
		return err == nil
	})
}

// TestHGFSLookupStorm: lookups by name that storm one directory (stat of
// every file of a listing the kernel never read, in an order unrelated to
// the host's) are answered from one pipelined listing: about one round
// trip per entry, as the lookups alone would cost, with the host's
// attributes; once the listing is complete, names it lacks cost nothing
// within the negative timeout, and a name the host adds shows when that
// has passed. The listing closes its search.
func TestHGFSLookupStorm(t *testing.T) {
	for _, c := range []*hgfsClient{ours, oursBackdoor} {
		t.Run(c.name, func(t *testing.T) {
			e := newHGFSEnv(t, c)
			dir := filepath.Join(e.share, "d")
			const n = 300
			var names []string
			for i := range n {
				name := fmt.Sprintf("f%03d", i)
				names = append(names, name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte("x"), i), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			os.Mkdir(filepath.Join(dir, "sub"), 0o750)
			os.Symlink("f001", filepath.Join(dir, "link"))
			names = append(names, "sub", "link")
			slices.Reverse(names)
			ctl := vmxsim.NewCtl(e.dir)
			state := func() hgfsd.State {
				st, err := ctl.State(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return st.HGFS
			}
			for _, timeouts := range [][]string{{"entry_timeout=30", "attr_timeout=30"}, nil} {
				mnt := e.mount(t, ".host:/s", timeouts...)
				before := state().Requests
				for _, name := range names {
					got, err := os.Lstat(filepath.Join(mnt, "d", name))
					if err != nil {
						t.Fatal(err)
					}
					want := must(os.Lstat(filepath.Join(dir, name)))
					// HGFS times have 100 ns steps.
					if got.Size() != want.Size() || got.Mode() != want.Mode() || !got.ModTime().Equal(want.ModTime().Truncate(100)) {
						t.Errorf("%s: size %d mode %v mtime %v, host has %d %v %v", name, got.Size(), got.Mode(), got.ModTime(), want.Size(), want.Mode(), want.ModTime())
					}
				}
				if len(timeouts) == 0 {
					continue // 1 s timeouts: answers checked, not costs
				}
				after := state()
				d := map[string]uint64{}
				total := uint64(0)
				for k, v := range after.Requests {
					if v > before[k] {
						d[k] = v - before[k]
						total += v - before[k]
					}
				}
				// Lookups before the storm (and of "d"), the listing with
				// ".", ".." and the reads past its end, open and close.
				if d["GETATTR_V3"] > 5 || total > uint64(len(names))+12 {
					t.Errorf("stat of %d names cost %d round trips: %v", len(names), total, d)
				}
				before = after.Requests
				if _, err := os.Lstat(filepath.Join(mnt, "d", "absent")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("absent name: %v", err)
				}
				if got := state().Requests["GETATTR_V3"]; got != before["GETATTR_V3"] {
					t.Errorf("a name the complete listing lacks was asked for")
				}
				testutil.WaitFor(t, 10*time.Second, "the listing's search to be closed", func() bool {
					return state().OpenSearches == 0
				})
			}
			// 1 s timeouts: a name the host adds after the listing shows
			// once the negative timeout has passed.
			mnt := e.mount(t, ".host:/s")
			for _, name := range names {
				must(os.Lstat(filepath.Join(mnt, "d", name)))
			}
			os.Lstat(filepath.Join(mnt, "d", "late"))
			os.WriteFile(filepath.Join(dir, "late"), []byte("late"), 0o644)
			testutil.WaitFor(t, 10*time.Second, "the host's new file to show", func() bool {
				fi, err := os.Lstat(filepath.Join(mnt, "d", "late"))
				return err == nil && fi.Size() == 4
			})
		})
	}
}

// TestVmxsimCPUProfile: vmxsim --cpuprofile writes a Go CPU profile
// (gzip-compressed protobuf) when it stops, for profiling the HGFS server.
func TestVmxsimCPUProfile(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	sim := testutil.StartSim(t, "--cpuprofile", prof, "--share", "s="+t.TempDir())
	sim.Stop(t)
	b, err := os.ReadFile(prof)
	if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile: %d bytes, %v", len(b), err)
	}
}

// TestHGFSBadReplies: a malformed or truncated reply fails that one
// operation with EIO and a log line; the mount keeps working.
func TestHGFSBadReplies(t *testing.T) {
	e := newHGFSEnv(t, ours)
	mnt := e.mount(t, ".host:/s", "cache=none")
	os.WriteFile(filepath.Join(e.share, "f"), []byte("data"), 0o644)
	// Ops the kernel does not retry on its own: statfs and readdir.
	ops := []struct {
		op  string
		run func() error
	}{
		{"QUERY_VOLUME_INFO_V3", func() error { var st syscall.Statfs_t; return syscall.Statfs(mnt, &st) }},
		{"SEARCH_READ_V3", func() error { _, err := os.ReadDir(mnt); return err }},
		{"READ_V3", func() error { _, err := os.ReadFile(filepath.Join(mnt, "f")); return err }},
	}
	for _, fault := range []string{"truncate", "short"} {
		for _, o := range ops {
			e.ctl(t, "hgfs", "fault", fault, "1", o.op)
			if err := o.run(); !errors.Is(err, syscall.EIO) {
				t.Fatalf("%s %s reply: got %v, want EIO", fault, o.op, err)
			}
			if err := o.run(); err != nil {
				t.Fatalf("after a %s %s reply the mount is broken: %v", fault, o.op, err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || string(b) != "data" {
			t.Fatalf("after %s replies: %q %v", fault, b, err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the log line", func() bool {
		return strings.Contains(e.logs(), "malformed reply")
	})
}

// posixNotApplicable are the posixtest tests that cannot apply to HGFS,
// not run; posixMaySkip those that run and may skip themselves. Both are
// listed with the same reasons in docs/posixtest.md
// (TestPosixSkipsDocumented); any other skip fails under
// GOVMTOOLS_REQUIRE_ALL=1.
var (
	posixNotApplicable = map[string]string{
		"Link":                "HGFS V3 has no hard links (link returns EPERM, as in vmhgfs-fuse)",
		"LinkUnlinkRename":    "needs hard links",
		"NlinkZero":           "needs hard links (st_nlink is always 1 over HGFS)",
		"XAttr":               "HGFS V3 carries no extended attributes",
		"XAttrLarge":          "HGFS V3 carries no extended attributes",
		"FcntlFlockSetLk":     "HGFS has no byte-range locks over the backdoor; locks are kernel-local",
		"FcntlFlockLocksFile": "HGFS has no byte-range locks over the backdoor; locks are kernel-local",
		"Fallocate":           "HGFS V3 has no fallocate",
		"FallocateKeepSize":   "HGFS V3 has no fallocate",
		"FstatDeleted":        "HGFS handles do not keep unlinked files alive (a reopen by path finds nothing)",
	}
	posixMaySkip = map[string]string{
		"Tmpfile": "HGFS has no unnamed files: O_TMPFILE fails with EOPNOTSUPP, and posixtest skips",
	}
)

// TestHGFSPosix runs go-fuse's posixtest suite on a mount of a vmxsim
// share. Its own skips go through testutil.GuardSkips.
func TestHGFSPosix(t *testing.T) {
	e := newHGFSEnv(t, ours)
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixNotApplicable[name]; ok {
				testutil.NotApplicable(t, why)
			}
			testutil.GuardSkips(t, posixMaySkip[name])
			// Each test gets a fresh directory on the share.
			sub := filepath.Join(e.share, name)
			os.Mkdir(sub, 0o777)
			mnt := e.mount(t, ".host:/s/"+name)
			fn(t, mnt)
		})
	}
}

// TestPosixSkipsDocumented: every posixtest skip allowed is in
// docs/posixtest.md with its reason, and the document lists no other,
// and names only tests posixtest has.
func TestPosixSkipsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/posixtest.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 5 && strings.HasPrefix(strings.TrimSpace(f[1]), "`") {
			listed[strings.Trim(strings.TrimSpace(f[1]), "`")] = strings.TrimSpace(f[2]) + "|" + strings.TrimSpace(f[3])
		}
	}
	want := map[string]string{}
	for n, why := range posixNotApplicable {
		want[n] = "not run|" + why
	}
	for n, why := range posixMaySkip {
		want[n] = "may skip|" + why
	}
	for n, w := range want {
		if listed[n] != w {
			t.Errorf("docs/posixtest.md: %s is %q, want %q", n, listed[n], w)
		}
		if posixtest.All[n] == nil {
			t.Errorf("%s is no posixtest test", n)
		}
	}
	for n := range listed {
		if _, ok := want[n]; !ok {
			t.Errorf("docs/posixtest.md lists %s, which the test does not allow to skip", n)
		}
	}
}

func TestHGFSClientListsShares(t *testing.T) {
	sim := testutil.StartSim(t, "--share", "b="+t.TempDir(), "--share", "a="+t.TempDir()+",ro")
	out, errOut, code := sim.Run(t, "vmware-hgfsclient", "--rpc", sim.Mode())
	if code != 0 || out != "a\nb\n" {
		t.Fatalf("vmware-hgfsclient: %d %q %s", code, out, errOut)
	}
	vmxsim.NewCtl(sim.Dir).HGFS(t.Context(), "disable")
	if _, errOut, code := sim.Run(t, "vmware-hgfsclient", "--rpc", sim.Mode()); code != 1 || !strings.Contains(errOut, "disabled") {
		t.Fatalf("with sharing disabled: exit %d, %s", code, errOut)
	}
	st, err := vmxsim.NewCtl(sim.Dir).State(t.Context())
	if err != nil || len(st.HGFS.Shares) != 2 || !st.HGFS.Shares[0].ReadOnly || st.HGFS.OpenSearches != 0 {
		t.Fatalf("ctl state hgfs: %+v %v", st.HGFS, err)
	}
}

// TestHGFSFstab mounts through mount(8) with the fstab line VMware
// documents; mount(8) runs mount.fuse3, which runs vmhgfs-fuse with -o
// options, as on a VM at boot.
func TestHGFSFstab(t *testing.T) {
	testutil.RequireFUSE(t)
	_, err := exec.LookPath("mount.fuse3")
	testutil.Require(t, err == nil, "mount.fuse3", "apt-get install fuse3 (scripts/test-deps.d/40-fuse3.sh)")
	share := t.TempDir()
	os.WriteFile(filepath.Join(share, "hello"), []byte("hi"), 0o644)
	sim := testutil.StartSim(t, "--share", "s="+share)
	// mount(8) runs helpers with PATH=/sbin:/bin:/usr/sbin:/usr/bin, so
	// the binary has to be there, as a package would install it.
	ours := filepath.Join(sim.Bin, "vmhgfs-fuse")
	const helper = "/usr/sbin/vmhgfs-fuse"
	if target, err := os.Readlink(helper); err == nil && target == ours {
		// left by an earlier run of this test
	} else if _, err := os.Lstat(helper); err == nil {
		testutil.Require(t, false, "no other vmhgfs-fuse in /usr/sbin", "remove "+helper+" (open-vm-tools?) to test the fstab line")
	} else {
		if err := os.Symlink(ours, helper); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(helper) })
	}
	mnt := t.TempDir()
	fstab := filepath.Join(t.TempDir(), "fstab")
	os.WriteFile(fstab, []byte(".host:/ "+mnt+" fuse.vmhgfs-fuse defaults,allow_other 0 0\n"), 0o644)
	cmd := exec.Command("mount", "--fstab", fstab, mnt)
	cmd.Env = append(os.Environ(), "PATH="+sim.Bin+":"+os.Getenv("PATH"), "GOVMTOOLS_RPC="+sim.Mode())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount --fstab: %v\n%s", err, out)
	}
	t.Cleanup(func() { hgfswork.Unmount(mnt) })
	if b, err := os.ReadFile(filepath.Join(mnt, "s", "hello")); err != nil || string(b) != "hi" {
		t.Fatalf("read through the fstab mount: %q %v", b, err)
	}
	mounts := must(os.ReadFile("/proc/self/mounts"))
	if !strings.Contains(string(mounts), "vmhgfs-fuse "+mnt+" fuse.vmhgfs-fuse ") || !strings.Contains(string(mounts), "allow_other") {
		t.Fatalf("mount table lacks the vmtoolsd-compatible entry:\n%s", mounts)
	}
	if err := hgfswork.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	// mount.fuse3 as mount(8) calls it for a fuse.vmhgfs-fuse entry; it runs
	// "vmhgfs-fuse SOURCE MOUNTPOINT -o OPTIONS", the form vmhgfs-fuse parses.
	cmd = exec.Command("mount.fuse3", ".host:/s", mnt, "-t", "fuse.vmhgfs-fuse", "-o", "rw,nodev,nosuid,allow_other,rpc="+sim.Mode())
	cmd.Env = append(os.Environ(), "PATH="+sim.Bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount.fuse3: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "hello")); err != nil || string(b) != "hi" {
		t.Fatalf("read through mount.fuse3: %q %v", b, err)
	}
}

func TestHGFSCommandLine(t *testing.T) {
	bin := testutil.Binaries(t)
	if _, _, code := testutil.RunBinary(t, filepath.Join(bin, "vmhgfs-fuse"), "--help"); code != 0 {
		t.Fatal("--help")
	}
	if _, errOut, code := testutil.RunBinary(t, filepath.Join(bin, "vmhgfs-fuse"), "-o", "bogus", ".host:/", t.TempDir()); code == 0 || !strings.Contains(errOut, "bogus") {
		t.Fatalf("unknown option accepted: %d %s", code, errOut)
	}
	if _, errOut, code := testutil.RunBinary(t, filepath.Join(bin, "vmhgfs-fuse"), "--rpc", "unix:"+t.TempDir(), ".host:/", t.TempDir()); code != 1 {
		t.Fatalf("no simulator: exit %d %s", code, errOut)
	}
	if _, err := os.Stat("/dev/fuse"); err == nil {
		if _, errOut, code := testutil.RunBinary(t, filepath.Join(bin, "vmhgfs-fuse"), "--enabled"); code != 0 {
			t.Fatalf("--enabled with /dev/fuse present: %d %s", code, errOut)
		}
	}
}

// TestPosixRenameOpenDirHost: on the host's own file system fstat of an
// open directory that another was renamed over shows the removed
// directory's mode, so RenameOpenDir through a mount must not skip.
func TestPosixRenameOpenDirHost(t *testing.T) {
	skipped := false
	t.Run("host", func(t *testing.T) {
		t.Cleanup(func() { skipped = t.Skipped() })
		posixtest.RenameOpenDir(t, t.TempDir())
	})
	if skipped {
		t.Fatal("RenameOpenDir skipped on the host's file system")
	}
}

// TestHGFSReadSize: on every mount, from its first open, a sequential
// read goes to the host in requests of the negotiated size (the mount's
// largest READ_V3, readahead two of them), not the 128 KiB the kernel
// reads ahead of a FUSE mount by default. The file is opened the moment
// the mount shows in mountinfo, which is all the foreground mounter
// waits for. The sizes come from the client's "mounted" log line; the
// requests are counted by the simulator.
func TestHGFSReadSize(t *testing.T) {
	for _, c := range []*hgfsClient{ours, oursBackdoor} {
		t.Run(c.name, func(t *testing.T) {
			testutil.RequireRoot(t) // the readahead is set in sysfs
			e := newHGFSEnv(t, c)
			const size = 24 << 20
			data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
			if err := os.WriteFile(filepath.Join(e.share, "big"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			ctl := vmxsim.NewCtl(e.dir)
			reads := func() uint64 {
				st, err := ctl.State(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return st.HGFS.Requests["READ_V3"]
			}
			before := reads()
			mnt, f := openWhileMounting(t, e, ".host:/s", "big")
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
			f.Close()
			if err != nil || n != size {
				t.Fatalf("read %d bytes: %v", n, err)
			}
			got := reads() - before
			var maxRead int
			testutil.WaitFor(t, 10*time.Second, "the client's mounted line", func() bool {
				_, rest, ok := strings.Cut(e.logs(), "maxRead=")
				if ok {
					fmt.Sscan(rest, &maxRead)
				}
				return maxRead > 0
			})
			ra := "?"
			if dev, err := mountDev(mnt); err == nil {
				if b, err := os.ReadFile("/sys/class/bdi/" + dev + "/read_ahead_kb"); err == nil {
					ra = strings.TrimSpace(string(b))
				}
			}
			want := (size + maxRead - 1) / maxRead
			t.Logf("%d MiB read in %d READ_V3 requests (%d of %d bytes expected; readahead %s KiB)", size>>20, got, want, maxRead, ra)
			// The kernel's readahead window grows to its full size over
			// the first requests: on average 3/4 of the largest size.
			if limit := uint64(size*4/3/maxRead) + 1; maxRead <= 128<<10 || got > limit {
				t.Errorf("%d MiB sequential read took %d READ_V3 requests, want at most %d (%d bytes each; readahead %s KiB): the negotiated read size is not in effect", size>>20, got, limit, maxRead, ra)
			}
		})
	}
}

// hgfsRequests returns a function reading the simulator's HGFS request
// counts by op.
func hgfsRequests(t *testing.T, dir string) func() map[string]uint64 {
	ctl := vmxsim.NewCtl(dir)
	return func() map[string]uint64 {
		st, err := ctl.State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return st.HGFS.Requests
	}
}

// TestHGFSCreateBurstCost: creating files costs OPEN_V3 and CLOSE_V3
// only, also when the burst outlasts the attribute timeout (1 s here):
// the new files' attributes are derived from what the host did to the
// first ones, and the directory's own attributes (whether it is
// set-group-ID), once stale, are asked for once rather than a GETATTR
// per new file. The entry timeout is long so that the directory's known
// name set answers the kernel's lookups before each create.
func TestHGFSCreateBurstCost(t *testing.T) {
	for _, c := range []*hgfsClient{ours, oursBackdoor} {
		t.Run(c.name, func(t *testing.T) {
			e := newHGFSEnv(t, c)
			mnt := e.mount(t, ".host:/s", "entry_timeout=30")
			d := filepath.Join(mnt, "d")
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			requests := hgfsRequests(t, e.dir)
			create := func(from, to int) {
				for i := from; i < to; i++ {
					f, err := os.OpenFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), os.O_WRONLY|os.O_CREATE, 0o644)
					if err != nil {
						t.Fatal(err)
					}
					f.Close()
				}
			}
			const n = 40
			before := requests()
			create(0, n)
			time.Sleep(1500 * time.Millisecond) // past the attribute timeout
			create(n, 2*n)
			after := requests()
			delta := func(op string) uint64 { return after[op] - before[op] }
			if delta("OPEN_V3") != 2*n {
				t.Errorf("%d OPEN_V3 for %d creations", delta("OPEN_V3"), 2*n)
			}
			// The first creation's GETATTR (what the host gives new
			// files), and the directory's after the pause.
			if g := delta("GETATTR_V3"); g > 4 {
				t.Errorf("%d creations cost %d GETATTR_V3 (%v)", 2*n, g, after)
			}
			for i := range 2 * n {
				name := fmt.Sprintf("f%03d", i)
				got, err := os.Stat(filepath.Join(d, name))
				if err != nil {
					t.Fatal(err)
				}
				if want := must(os.Stat(filepath.Join(e.share, "d", name))); got.Mode() != want.Mode() {
					t.Errorf("%s: mode %v, the host has %v", name, got.Mode(), want.Mode())
				}
			}
		})
	}
}

// openWhileMounting mounts source and opens name on the mount the moment
// the kernel lets it (an open tried over and over while the mounter
// runs), as a program waiting for the mount may; the mount is unmounted
// at the end of the test.
func openWhileMounting(t *testing.T, e *hgfsEnv, source, name string) (string, *os.File) {
	t.Helper()
	mnt := t.TempDir()
	done := make(chan error, 1)
	go func() { done <- e.mounter.Mount(t.Context(), source, mnt) }()
	mounted := false
	// The unmount is registered once the mounter has returned, after
	// the cleanups it registers (waiting for a foreground daemon to
	// exit), so it runs before them.
	mountDone := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
		mounted = true
		t.Cleanup(func() {
			if err := hgfswork.Unmount(mnt); err != nil {
				t.Error(err)
			}
			e.logOnFailure(t)
		})
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		f, err := os.Open(filepath.Join(mnt, name))
		if err == nil {
			if !mounted {
				mountDone(<-done)
			}
			return mnt, f
		}
		if !mounted {
			select {
			case err := <-done:
				mountDone(err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not open within 30 s of mounting: %v", name, err)
		}
		runtime.Gosched()
	}
}

// mountDev is MAJOR:MINOR of the mount at mnt, from /proc/self/mountinfo.
func mountDev(mnt string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	dev := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == mnt {
			dev = f[2]
		}
	}
	if dev == "" {
		return "", fmt.Errorf("%s is not mounted", mnt)
	}
	return dev, nil
}

// TestHGFSCreatedDirKeepsItsInode: a directory made through the mount
// once the client knows what the host gives new files (no GETATTR after
// the mkdir, so no host inode number yet) stays the same inode when a
// later lookup brings the host's attributes: a process working in it can
// still name its working directory. This was the Git workload's flake,
// "unable to get current working directory", when git ran in a new
// directory for longer than the entry timeout.
func TestHGFSCreatedDirKeepsItsInode(t *testing.T) {
	e := newHGFSEnv(t, ours)
	mnt := e.mount(t, ".host:/s")
	// The first creations teach the client the host's defaults.
	teach := filepath.Join(mnt, "teach")
	os.Mkdir(teach, 0o755)
	hgfswork.CreateFiles(teach, 3)
	os.Mkdir(filepath.Join(teach, "sub"), 0o755)
	// The sleep is what is under test: the shell stays in the new
	// directory until the kernel's entry for it (1 s) has expired, so
	// the next path walk through it looks it up again.
	cmd := exec.Command("sh", "-c", "mkdir repo && cd repo && sleep 1.5 && ls ../repo >/dev/null && pwd -P")
	cmd.Dir = teach
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != filepath.Join(teach, "repo") {
		t.Errorf("a shell working in a directory it made: %v %q", err, out)
	}
}
