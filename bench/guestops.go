package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// guestOpsSize is the file the transfer rows move.
const guestOpsSize = 64 << 20

// benchGuestOps measures vSphere guest operations through vmxsim's
// front end as a throwaway user, ours and Debian's vmtoolsd under the
// same trap: the latency of a guest.run-equivalent (StartProgram of
// /bin/true until ListProcesses shows it ended) and upload/download MB/s
// of a 64 MiB file over the /guestFile URL (HGFS inside VIX 84).
func benchGuestOps(ctx context.Context, e *env) ([]row, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (a throwaway user, PAM)")
	}
	name, password, cleanup, err := benchUser()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	src := filepath.Join(e.scratch, "guestops.src")
	f, err := os.Create(src)
	if err != nil {
		return nil, err
	}
	_, err = io.CopyN(f, rand.Reader, guestOpsSize)
	f.Close()
	if err != nil {
		return nil, err
	}
	vargs := []string{"--vsphere", "127.0.0.1:0", "--ping-interval", "200ms"}
	conf, err := os.MkdirTemp(e.scratch, "conf-")
	if err != nil {
		return nil, err
	}
	ours, err := e.guestOpsRun(ctx, name, password, src, func() (*daemonRun, error) {
		return e.trapDaemon(ctx, vargs, nil, filepath.Join(e.bin, "vmtoolsd"), "--conf-dir", conf, "--log-level", "warn")
	})
	if err != nil {
		return nil, fmt.Errorf("ours: %w", err)
	}
	ref := []string{"—", "—", "—"}
	if peer := peerRoot(); peer != "" {
		lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
		work, err := os.MkdirTemp(e.scratch, "peer-")
		if err != nil {
			return nil, err
		}
		pconf := filepath.Join(work, "tools.conf")
		os.WriteFile(pconf, []byte("[guestoperations]\nuseVGAuth=false\n[logging]\nlog=false\n"), 0o644)
		os.MkdirAll(filepath.Join(work, "plugins"), 0o755)
		theirs, err := e.guestOpsRun(ctx, name, password, src, func() (*daemonRun, error) {
			return e.trapDaemon(ctx, vargs, []string{"LD_LIBRARY_PATH=" + lib, "HOME=" + work}, filepath.Join(peer, "usr/bin/vmtoolsd"),
				"-c", pconf, "-p", filepath.Join(work, "plugins"), "--common-path", filepath.Join(lib, "open-vm-tools/plugins/common"))
		})
		if err != nil {
			ref = []string{"error: " + err.Error(), "", ""}
		} else {
			ref = theirs
		}
	}
	notes := "govmomi client, name/password auth (PAM each request), vmxsim run --vsphere"
	return []row{
		{"guest.run-equivalent latency (StartProgram /bin/true until ended), median of 5", ours[0], ref[0], notes},
		{"guest.upload of 64 MiB (MB/s)", ours[1], ref[1], "PUT to /guestFile, HGFS WRITE_V3 in 56 KiB VIX 84 packets; ours: one helper per transfer (PAM once), Debian's: PAM every packet"},
		{"guest.download of 64 MiB (MB/s)", ours[2], ref[2], "GET from /guestFile, HGFS READ_V3 in 60 KiB VIX 84 packets; ours: one helper per transfer (PAM once), Debian's: PAM every packet"},
	}, nil
}

func benchUser() (name, password string, cleanup func(), err error) {
	b := make([]byte, 4)
	rand.Read(b)
	name = "gvmb" + hex.EncodeToString(b)
	password = "pw-" + hex.EncodeToString(b) + "-Ok"
	if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		return "", "", nil, fmt.Errorf("useradd: %v: %s", err, out)
	}
	cleanup = func() { exec.Command("userdel", "-r", "-f", name).Run() }
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("chpasswd: %v: %s", err, out)
	}
	return name, password, cleanup, nil
}

// guestOpsRun starts a daemon and returns latency, upload and download;
// once the latency is measured, a failed transfer leaves it in place
// and fills the transfer cells with the error.
func (e *env) guestOpsRun(ctx context.Context, name, password, src string, start func() (*daemonRun, error)) (cells []string, err error) {
	latency := ""
	defer func() {
		if err != nil && latency != "" {
			cells, err = []string{latency, "error: " + err.Error(), "error: " + err.Error()}, nil
		}
	}()
	d, err := start()
	if err != nil {
		return nil, err
	}
	defer d.stop()
	// Only "running": Debian's vmtoolsd runs here with no vmsvc plugin
	// but vix, so it never registers tools.capability.statechange (the
	// powerOps plugin's), which waitRunning also awaits.
	if err := waitTools(ctx, newSimCtl(d.dir), 20*time.Second, "running", func(st simState) bool { return st.Tools.Running }); err != nil {
		return nil, err
	}
	raw, err := newSimCtl(d.dir).vsphereURL(ctx)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return nil, err
	}
	finder := find.NewFinder(c.Client)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return nil, err
	}
	finder.SetDatacenter(dc)
	vm, err := finder.VirtualMachine(ctx, "govmtools-vm")
	if err != nil {
		return nil, err
	}
	om := guest.NewOperationsManager(c.Client, vm.Reference())
	pm, err := om.ProcessManager(ctx)
	if err != nil {
		return nil, err
	}
	fm, err := om.FileManager(ctx)
	if err != nil {
		return nil, err
	}
	auth := &types.NamePasswordAuthentication{Username: name, Password: password}
	// The host sees tools running before the vix plugin may answer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err = pm.ListProcesses(ctx, auth, []int64{1}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("guest operations not answering: %w", err)
	}
	var lat []time.Duration
	for range 5 {
		t0 := time.Now()
		pid, err := pm.StartProgram(ctx, auth, &types.GuestProgramSpec{ProgramPath: "/bin/true"})
		if err != nil {
			return nil, err
		}
		for {
			ps, err := pm.ListProcesses(ctx, auth, []int64{pid})
			if err != nil {
				return nil, err
			}
			if len(ps) == 1 && ps[0].EndTime != nil {
				break
			}
			if time.Since(t0) > 30*time.Second {
				return nil, errors.New("/bin/true did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
	}
	latency = millis(median(lat))
	dst := "/home/" + name + "/bench.bin"
	t0 := time.Now()
	turl, err := fm.InitiateFileTransferToGuest(ctx, auth, dst, &types.GuestPosixFileAttributes{}, guestOpsSize, true)
	if err != nil {
		return nil, err
	}
	pu, err := fm.TransferURL(ctx, turl)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	p := soap.DefaultUpload
	p.ContentLength = guestOpsSize
	err = c.Client.Upload(ctx, f, pu, &p)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	up := time.Since(t0)
	t0 = time.Now()
	info, err := fm.InitiateFileTransferFromGuest(ctx, auth, dst)
	if err != nil {
		return nil, err
	}
	du, err := fm.TransferURL(ctx, info.Url)
	if err != nil {
		return nil, err
	}
	rc, _, err := c.Client.Download(ctx, du, &soap.DefaultDownload)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != guestOpsSize {
		return nil, fmt.Errorf("download: %d bytes: %v", n, err)
	}
	down := time.Since(t0)
	mbs := func(d time.Duration) string { return fmt.Sprintf("%.1f MB/s", guestOpsSize/1e6/d.Seconds()) }
	return []string{latency, mbs(up), mbs(down)}, nil
}

// vsphereURL is `vmxsim ctl vsphere`: the SDK URL with credentials.
func (c *simCtl) vsphereURL(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://vmxsim/vsphere", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /vsphere: %d %v", resp.StatusCode, err)
	}
	return strings.TrimSpace(string(b)), nil
}
