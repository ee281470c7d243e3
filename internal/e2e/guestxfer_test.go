package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// TestGuestTransfer: govc guest.upload then guest.download of a 1 GiB
// file as a test user round-trips with the same checksum, through
// vmxsim's /guestFile URL, HGFS inside VIX 84 and our helper, while the
// peak resident memory (VmHWM) of vmtoolsd, its helpers and vmxsim stays
// under maxTransferHWM (nothing buffers the file); the user can neither
// upload where they may not write nor download /etc/shadow; guest.run
// (which downloads the program's output) prints the user's uid.
func TestGuestTransfer(t *testing.T) {
	testutil.NotEmulated(t, testutil.EmulatedBigTransfer)
	testutil.RequireHelperPAM(t)
	name, password, uid := guestUser(t)
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	testutil.Govc(t)
	v := startVmtoolsd(t, sim, "", nil)
	waitToolsRunning(t, ctl, 10*time.Second)
	waitVSphereRunning(t, ctl)
	hwm := watchHWM(v.cmd.Process.Pid, sim.Pid())
	guestTransferScenario(t, ctl, name, password, uid, 1<<30)
	peaks := hwm.stop()
	t.Logf("peak VmHWM: %v", peaks)
	if peaks["vmware-vix-help"] == 0 || peaks["vmtoolsd"] == 0 {
		t.Fatalf("the sampler saw neither vmtoolsd nor a helper: %v", peaks)
	}
	for comm, kib := range peaks {
		if kib > maxTransferHWM>>10 {
			t.Errorf("%s: VmHWM %d KiB during a 1 GiB transfer, over %d MiB", comm, kib, maxTransferHWM>>20)
		}
	}
}

// maxTransferHWM bounds the peak RSS of each process of a transfer.
const maxTransferHWM = 64 << 20

// hwmWatch samples VmHWM of a set of processes.
type hwmWatch struct {
	mu   sync.Mutex
	peak map[string]int64 // comm -> KiB
	quit chan struct{}
	done chan struct{}
}

// watchHWM samples, every 20 ms until stop, the VmHWM of the daemon
// pid, its children (the helpers) and the extra pids.
func watchHWM(daemon int, extra ...int) *hwmWatch {
	w := &hwmWatch{peak: map[string]int64{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			pids := append([]int{daemon}, extra...)
			pids = append(pids, childrenOf(daemon)...)
			for _, pid := range pids {
				comm, kib := procHWM(pid)
				w.mu.Lock()
				if comm != "" && kib > w.peak[comm] {
					w.peak[comm] = kib
				}
				w.mu.Unlock()
			}
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *hwmWatch) stop() map[string]int64 {
	close(w.quit)
	<-w.done
	return w.peak
}

// childrenOf lists the pids whose parent is pid (/proc/*/stat).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split
		// after its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// procHWM reads a process's name and VmHWM (KiB); "" once it is gone.
func procHWM(pid int) (string, int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", 0
	}
	var comm string
	var kib int64
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Name:"); ok {
			comm = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return comm, kib
}

// govcLong is govcErr with a hang detector sized for a large transfer.
func govcLong(t *testing.T, ctl *vmxsim.Ctl, args ...string) (string, error) {
	t.Helper()
	u, err := ctl.VSphereURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Govc(t), args...)
	cmd.Env = append(os.Environ(), "GOVC_URL="+u, "GOVC_INSECURE=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// writeRandom writes size pseudo-random bytes (ChaCha8 from a random
// seed: every block written, none sparse, far cheaper than crypto/rand)
// to path and returns their SHA-256, computed as they are written.
func writeRandom(t *testing.T, path string, size int64) [32]byte {
	t.Helper()
	var seed [32]byte
	rand.Read(seed[:])
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), mrand.NewChaCha8(seed), size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func guestTransferScenario(t *testing.T, ctl *vmxsim.Ctl, name, password, uid string, size int64) {
	login := "-l=" + name + ":" + password
	g := func(args ...string) (string, error) {
		t.Helper()
		return govcLong(t, ctl, append([]string{args[0], "-vm", "govmtools-vm", login}, args[1:]...)...)
	}
	home := "/home/" + name
	work := t.TempDir()
	src := filepath.Join(work, "src")
	sum := writeRandom(t, src, size)
	dst := filepath.Join(home, "big")
	start := time.Now()
	if o, err := g("guest.upload", src, dst); err != nil {
		t.Fatalf("upload: %v\n%s", err, o)
	}
	up := time.Since(start)
	st, err := os.Stat(dst)
	if err != nil || st.Size() != size {
		t.Fatalf("uploaded file: %v %v", st, err)
	}
	back := filepath.Join(work, "back")
	start = time.Now()
	if o, err := g("guest.download", dst, back); err != nil {
		t.Fatalf("download: %v\n%s", err, o)
	}
	down := time.Since(start)
	if fileSum(t, back) != sum {
		t.Fatalf("downloaded file differs from the uploaded one")
	}
	t.Logf("%d MiB: upload %.1f MB/s, download %.1f MB/s", size>>20,
		float64(size)/1e6/up.Seconds(), float64(size)/1e6/down.Seconds())

	// Overwrite needs -f.
	if o, err := g("guest.upload", src, dst); err == nil || !strings.Contains(o, "FileAlreadyExists") {
		t.Errorf("upload over an existing file: %v\n%s", err, o)
	}
	small := filepath.Join(work, "small")
	os.WriteFile(small, []byte("hello\n"), 0o644)
	if o, err := g("guest.upload", "-f", small, dst); err != nil {
		t.Errorf("upload -f: %v\n%s", err, o)
	} else if b, _ := os.ReadFile(dst); string(b) != "hello\n" {
		t.Errorf("after upload -f: %q", b)
	}

	// The user's rights hold.
	if o, err := g("guest.upload", small, "/etc/x-"+name); err == nil || !strings.Contains(o, "CannotAccessFile") {
		t.Errorf("upload into /etc: %v\n%s", err, o)
	}
	if _, err := os.Stat("/etc/x-" + name); err == nil {
		os.Remove("/etc/x-" + name)
		t.Errorf("upload into /etc happened")
	}
	shadow := filepath.Join(work, "shadow")
	if o, err := g("guest.download", "/etc/shadow", shadow); err == nil {
		t.Errorf("download of /etc/shadow succeeded\n%s", o)
	}
	if b, _ := os.ReadFile(shadow); strings.Contains(string(b), "root:") {
		t.Errorf("/etc/shadow leaked")
	}
	if o, err := g("guest.download", home, filepath.Join(work, "dir")); err == nil || !strings.Contains(o, "NotAFile") {
		t.Errorf("download of a directory: %v\n%s", err, o)
	}

	// guest.run uploads nothing but downloads the program's output.
	if o, err := g("guest.run", "/usr/bin/id", "-u"); err != nil || strings.TrimSpace(o) != uid {
		t.Errorf("guest.run id -u: %v %q, want %s", err, o, uid)
	}
}

// TestGuestTransferPeer runs the transfer scenario against Debian's
// vmtoolsd (its vix plugin and guest HGFS server) under the trap, with
// 16 MiB: Debian's vix plugin authenticates every 60 KiB packet with
// PAM, about 1.3 MB/s here, so 1 GiB would take half an hour.
func TestGuestTransferPeer(t *testing.T) {
	p := testutil.Peer(t)
	name, password, uid := guestUser(t)
	guestTransferScenario(t, startPeerVix(t, p), name, password, uid, 16<<20)
}
