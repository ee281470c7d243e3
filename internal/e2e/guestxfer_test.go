package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
)

// TestGuestTransfer: govc guest.upload then guest.download of a 64 MiB
// file as a test user round-trips with the same checksum, through
// vmxsim's /guestFile URL, HGFS inside VIX 84 and our helper; the user
// can neither upload where they may not write nor download /etc/shadow;
// guest.run (which downloads the program's output) prints the user's
// uid.
func TestGuestTransfer(t *testing.T) {
	testutil.NotEmulated(t, testutil.Arm64PAM)
	name, password, uid := guestUser(t)
	sim := testutil.StartSim(t, "--vsphere", "127.0.0.1:0", "--ping-interval", "200ms")
	ctl := vmxsim.NewCtl(sim.Dir)
	testutil.Govc(t)
	startVmtoolsd(t, sim, "", nil)
	waitToolsRunning(t, ctl, 10*time.Second)
	waitVSphereRunning(t, ctl)
	guestTransferScenario(t, ctl, name, password, uid, 64<<20)
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

func guestTransferScenario(t *testing.T, ctl *vmxsim.Ctl, name, password, uid string, size int64) {
	login := "-l=" + name + ":" + password
	g := func(args ...string) (string, error) {
		t.Helper()
		return govcLong(t, ctl, append([]string{args[0], "-vm", "govmtools-vm", login}, args[1:]...)...)
	}
	home := "/home/" + name
	work := t.TempDir()
	src := filepath.Join(work, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
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
	if fileSum(t, src) != fileSum(t, back) {
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
