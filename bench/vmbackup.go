package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// snapshotRuns is how many quiesced snapshots each daemon takes.
const snapshotRuns = 5

// benchVmbackup measures quiesced snapshots driven by vmxsim's host half
// (`vmxsim ctl snapshot`, read over the control socket as any client) under the trap, for our vmtoolsd and Debian's:
// from sending vmbackup.start to receiving prov.snapshotCommit (the guest
// frozen), and from sending vmbackup.snapshotDone to its reply (the
// guest thaws before it answers). Both run without backup scripts and
// without the manifest (Debian's would be written to /etc); Debian's
// FIFREEZE/FITHAW on the machine's mounts are the trap's recorded no-ops,
// ours are only logged (GOVMTOOLS_SIMULATED).
func benchVmbackup(ctx context.Context, e *env) ([]row, error) {
	const toolsConf = "[vmbackup]\nenableXmlManifest = false\n"
	conf, err := os.MkdirTemp(e.scratch, "conf-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(conf, "tools.conf"), []byte(toolsConf), 0o644); err != nil {
		return nil, err
	}
	d, err := e.trapDaemon(ctx, nil, nil, filepath.Join(e.bin, "vmtoolsd"), "--conf-dir", conf,
		"--power-runner", "record:"+filepath.Join(conf, "power.record"), "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	oursCommit, oursThaw, err := measureSnapshots(ctx, d.dir)
	d.stop()
	if err != nil {
		return nil, fmt.Errorf("ours: %w", err)
	}
	refCommit, refThaw, note := "—", "—", "peer unavailable (needs apt and root: make test-deps)"
	if peer := peerRoot(); peer != "" {
		lib := filepath.Join(peer, "usr/lib/x86_64-linux-gnu")
		work, err := os.MkdirTemp(e.scratch, "peer-")
		if err != nil {
			return nil, err
		}
		pconf := filepath.Join(work, "tools.conf")
		if err := os.WriteFile(pconf, []byte("[logging]\nlog = true\nvmsvc.level = warning\nvmsvc.handler = file\nvmsvc.data = "+work+"/vmsvc.log\n\n"+toolsConf), 0o644); err != nil {
			return nil, err
		}
		d, err := e.trapDaemon(ctx, nil, []string{"LD_LIBRARY_PATH=" + lib, "HOME=" + work},
			filepath.Join(peer, "usr/bin/vmtoolsd"), "-c", pconf,
			"-p", filepath.Join(lib, "open-vm-tools/plugins/vmsvc"), "--common-path", filepath.Join(lib, "open-vm-tools/plugins/common"))
		if err != nil {
			return nil, err
		}
		c, t, err := measureSnapshots(ctx, d.dir)
		d.stop()
		if err != nil {
			return nil, fmt.Errorf("Debian's vmtoolsd: %w", err)
		}
		refCommit, refThaw = millis(c), millis(t)
		note = "open-vm-tools polls its state machine every 1 s: the freeze runs on the tick after the start, the commit event goes out on the next"
	}
	return []row{
		{fmt.Sprintf("Quiesced snapshot under the trap: `vmbackup.start` to `prov.snapshotCommit` (frozen), median of %d", snapshotRuns), millis(oursCommit), refCommit, note},
		{fmt.Sprintf("Quiesced snapshot under the trap: `vmbackup.snapshotDone` to its reply (thawed), median of %d", snapshotRuns), millis(oursThaw), refThaw, "timed by the host (vmxsim's quiesce driver); ours freezes nothing here (simulated), Debian's FIFREEZE/FITHAW are trapped no-ops"},
	}, nil
}

// snapResult is the part of a `ctl snapshot` record the rows use.
type snapResult struct {
	ID              int     `json:"id"`
	Quiesced        bool    `json:"quiesced"`
	Fault           string  `json:"fault"`
	Message         string  `json:"message"`
	StartToCommitMs float64 `json:"startToCommitMs"`
	DoneToThawedMs  float64 `json:"doneToThawedMs"`
}

// ctlJSON sends one control request and decodes its JSON answer.
func ctlJSON(ctx context.Context, hc *http.Client, method, path, body string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://vmxsim"+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ctl %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// measureSnapshots waits for the tools and takes snapshotRuns quiesced
// snapshots through the simulator at dir; it returns the median times
// from start to commit and from snapshotDone to its reply.
func measureSnapshots(ctx context.Context, dir string) (commit, thaw time.Duration, err error) {
	hc := ctlClient(dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Tools struct {
				Running bool `json:"running"`
			} `json:"tools"`
		}
		err := ctlJSON(ctx, hc, http.MethodGet, "/state", "", &st)
		if err == nil && st.Tools.Running {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("tools not running after 30 s (%v)", err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return 0, 0, err
		}
	}
	var commits, thaws []time.Duration
	for range snapshotRuns {
		var res snapResult
		if err := ctlJSON(ctx, hc, http.MethodPost, "/snapshot", `{"quiesce": true}`, &res); err != nil {
			return 0, 0, fmt.Errorf("snapshot: %w", err)
		}
		if res.Fault != "" || !res.Quiesced || res.StartToCommitMs < 0 || res.DoneToThawedMs < 0 {
			return 0, 0, fmt.Errorf("snapshot %d not measured: %+v", res.ID, res)
		}
		commits = append(commits, time.Duration(res.StartToCommitMs*float64(time.Millisecond)))
		thaws = append(thaws, time.Duration(res.DoneToThawedMs*float64(time.Millisecond)))
	}
	return median(commits), median(thaws), nil
}
