package vmxsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/govmtools/govmtools/vmxsim/quiesce"
)

// Ctl is a client of a running simulator's control API (DIR/ctl.sock).
type Ctl struct {
	Dir string
	hc  *http.Client
}

// NewCtl returns a client for the simulator serving dir.
func NewCtl(dir string) *Ctl {
	path := filepath.Join(dir, CtlSocket)
	return &Ctl{Dir: dir, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// Do sends a request to the control API and returns the body of a 2xx
// answer; other answers become errors carrying the body text.
func (c *Ctl) Do(ctx context.Context, method, path string, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://vmxsim"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vmxsim ctl: %w (is vmxsim serving %s?)", err, c.Dir)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("vmxsim ctl %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("vmxsim ctl %s: %s", path, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// State fetches the simulator's view of the VM.
func (c *Ctl) State(ctx context.Context) (State, error) {
	var s State
	b, err := c.StateJSON(ctx)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("vmxsim ctl state: %w", err)
	}
	return s, nil
}

// StateJSON fetches the simulator's view of the VM as the JSON document
// `vmxsim ctl state` prints.
func (c *Ctl) StateJSON(ctx context.Context) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/state", "")
}

// Log fetches vmware.log.
func (c *Ctl) Log(ctx context.Context) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, "/log", "")
}

// TCLO sends one TCLO command to the tools service and returns its reply.
func (c *Ctl) TCLO(ctx context.Context, cmd string) (string, error) {
	b, err := c.Do(ctx, http.MethodPost, "/tclo", cmd)
	return string(b), err
}

// Power queues a power operation (halt, reboot, poweron, resume, suspend)
// to the tools service and returns its reply.
func (c *Ctl) Power(ctx context.Context, op string) (string, error) {
	b, err := c.Do(ctx, http.MethodPost, "/power/"+url.PathEscape(op), "")
	return string(b), err
}

// VSphereURL returns the vSphere front end's URL with credentials.
func (c *Ctl) VSphereURL(ctx context.Context) (string, error) {
	b, err := c.Do(ctx, http.MethodGet, "/vsphere", "")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// BackdoorCheckpoint makes the next mid-transfer call on every open
// backdoor channel fail with CPT (vmxsim run); it returns the backdoor's
// counters as JSON.
func (c *Ctl) BackdoorCheckpoint(ctx context.Context) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/backdoor/checkpoint", "")
}

// BackdoorReset closes every backdoor channel (vmxsim run); it returns the
// backdoor's counters as JSON.
func (c *Ctl) BackdoorReset(ctx context.Context) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/backdoor/reset", "")
}

// BackdoorKill arms a kill fault (vmxsim run): the guest process whose
// RPCI message reaches moment at (sendsize, sent, recvstatus), after that
// many more, is SIGKILLed there. It returns the backdoor's counters as
// JSON.
func (c *Ctl) BackdoorKill(ctx context.Context, at string, after int) (json.RawMessage, error) {
	q := url.Values{"at": {at}}
	if after != 0 {
		q.Set("after", strconv.Itoa(after))
	}
	return c.Do(ctx, http.MethodPost, "/backdoor/kill?"+q.Encode(), "")
}

// BackdoorClock runs the host clock of the backdoor time commands d ahead
// of the real time (vmxsim run); it returns the backdoor's counters as
// JSON.
func (c *Ctl) BackdoorClock(ctx context.Context, d time.Duration) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/backdoor/clock", d.String())
}

// Snapshot runs one snapshot operation (`vmxsim ctl snapshot`) and
// returns its record; a failed one is also an error naming the vSphere
// fault.
func (c *Ctl) Snapshot(ctx context.Context, opts quiesce.Options) (quiesce.Result, error) {
	var res quiesce.Result
	body, err := json.Marshal(opts)
	if err != nil {
		return res, err
	}
	b, err := c.Do(ctx, http.MethodPost, "/snapshot", string(body))
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return res, fmt.Errorf("vmxsim ctl snapshot: %w", err)
	}
	if res.Fault != "" {
		return res, &quiesce.Error{Fault: res.Fault, Message: res.Message}
	}
	return res, nil
}

// SnapshotAbort sends vmbackup.abort during the running snapshot
// operation and returns the guest's reply.
func (c *Ctl) SnapshotAbort(ctx context.Context) (string, error) {
	b, err := c.Do(ctx, http.MethodPost, "/snapshot/abort", "")
	return string(b), err
}

// SnapshotDelayDone holds vmbackup.snapshotDone back d in every later
// snapshot operation that sets no delay of its own (fault injection).
func (c *Ctl) SnapshotDelayDone(ctx context.Context, d time.Duration) error {
	_, err := c.Do(ctx, http.MethodPost, "/snapshot/delay-done", d.String())
	return err
}

// Share enables or disables one shared folder of a running simulator.
func (c *Ctl) Share(ctx context.Context, name string, enable bool) error {
	action := "disable"
	if enable {
		action = "enable"
	}
	_, err := c.Do(ctx, http.MethodPost, "/hgfs/share/"+url.PathEscape(name)+"/"+action, "")
	return err
}

// HGFS sends enable, disable, restart, or "fault SPEC" to the HGFS server.
func (c *Ctl) HGFS(ctx context.Context, action string) error {
	body := ""
	if spec, ok := strings.CutPrefix(action, "fault "); ok {
		action, body = "fault", spec
	}
	_, err := c.Do(ctx, http.MethodPost, "/hgfs/"+url.PathEscape(action), body)
	return err
}

// HoldRPCI holds requests of the RPCI command name unhandled, after
// letting after more pass, until ReleaseRPCI.
func (c *Ctl) HoldRPCI(ctx context.Context, name string, after int) error {
	q := url.Values{"rpci": {name}}
	if after != 0 {
		q.Set("after", strconv.Itoa(after))
	}
	_, err := c.Do(ctx, http.MethodPost, "/fault/hold?"+q.Encode(), "")
	return err
}

// ReleaseRPCI releases the held requests: handled as usual, or with drop
// never handled.
func (c *Ctl) ReleaseRPCI(ctx context.Context, drop bool) error {
	path := "/fault/release"
	if drop {
		path += "?drop=1"
	}
	_, err := c.Do(ctx, http.MethodPost, path, "")
	return err
}

// FaultStatus returns {"held": N}, the number of requests held now.
func (c *Ctl) FaultStatus(ctx context.Context) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/fault", "")
}
