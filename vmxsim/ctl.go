package vmxsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
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
	b, err := c.Do(ctx, http.MethodGet, "/state", "")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("vmxsim ctl state: %w", err)
	}
	return s, nil
}

// TCLO sends one TCLO command to the tools service and returns its reply.
func (c *Ctl) TCLO(ctx context.Context, cmd string) (string, error) {
	b, err := c.Do(ctx, http.MethodPost, "/tclo", cmd)
	return string(b), err
}

// Power queues a power operation (halt, reboot, poweron, resume, suspend)
// to the tools service and returns its reply.
func (c *Ctl) Power(ctx context.Context, op string) (string, error) {
	b, err := c.Do(ctx, http.MethodPost, "/power/"+op, "")
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
