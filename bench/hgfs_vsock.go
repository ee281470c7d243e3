package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/govmtools/govmtools/internal/hgfswork"
)

// trapCounts are the counters of `vmxsim ctl state` that say what the
// trap cost a workload: ptrace stops of every kind, and the vsock
// connections the VMX accepted (each one a socket and a connect the trap
// stopped and emulated).
type trapCounts struct {
	stops, vsockConns uint64
	// RPCIs answered over vsock and over the backdoor.
	vsockRPCI, backdoorRPCI uint64
}

func (c trapCounts) sub(o trapCounts) trapCounts {
	return trapCounts{stops: c.stops - o.stops, vsockConns: c.vsockConns - o.vsockConns,
		vsockRPCI: c.vsockRPCI - o.vsockRPCI, backdoorRPCI: c.backdoorRPCI - o.backdoorRPCI}
}

// parseTrapCounts reads trap.stops and transports.vsock.connections of
// `vmxsim ctl state`; the trap's counters must be there (vmxsim run).
func parseTrapCounts(state []byte) (trapCounts, error) {
	var st struct {
		Trap *struct {
			Stops *uint64 `json:"stops"`
		} `json:"trap"`
		Transports map[string]struct {
			RPCI        uint64 `json:"rpci"`
			Connections uint64 `json:"connections"`
		} `json:"transports"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		return trapCounts{}, fmt.Errorf("vmxsim ctl state: %w", err)
	}
	if st.Trap == nil || st.Trap.Stops == nil {
		return trapCounts{}, errors.New("vmxsim ctl state: no trap.stops")
	}
	vs, bd := st.Transports["vsock"], st.Transports["backdoor"]
	return trapCounts{stops: *st.Trap.Stops, vsockConns: vs.Connections, vsockRPCI: vs.RPCI, backdoorRPCI: bd.RPCI}, nil
}

func trapCounter(ctx context.Context, e *env, simDir string) func() (trapCounts, error) {
	return func() (trapCounts, error) {
		out, err := ctlState(ctx, e, simDir)
		if err != nil {
			return trapCounts{}, err
		}
		return parseTrapCounts(out)
	}
}

// benchHGFSVSock: ours over vsock under the trap, the path vmhgfs-fuse
// takes on a VM whose VMX offers vsock (--rpc auto under `vmxsim run`,
// which turns its AF_VSOCK sockets into connections to the simulator).
// Only socket, connect and the like stop in the trap; the requests and
// replies are read and written natively, so these rows measure the
// client and the VMX's stream side, not ptrace. Debian's vmhgfs-fuse has
// no vsock path.
func benchHGFSVSock(ctx context.Context, e *env) ([]row, error) {
	if runtime.GOARCH != "amd64" {
		return []row{{"HGFS over vsock under the trap", "—", "—", "needs linux/amd64"}}, nil
	}
	parent, tarball, cleanup, err := hgfsFixture(e)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	share, simDir, sh, stop, err := shareTrapShell(e, parent)
	if err != nil {
		return nil, err
	}
	defer stop()
	ours := hgfswork.Foreground("govmtools", sh.Start, nil, filepath.Join(e.bin, "vmhgfs-fuse"))
	tg := hgfsTarget{name: "ours", mounter: &ours, dir: filepath.Join(share, "ours"),
		trips: tripCounter(ctx, e, simDir), trap: trapCounter(ctx, e, simDir)}
	res, names, err := runHGFSTarget(ctx, tg, tarball)
	if err != nil {
		return nil, fmt.Errorf("ours over vsock under the trap: %w", err)
	}
	var rows []row
	for _, w := range names {
		r := res[w]
		if r.trap.backdoorRPCI > 0 || r.trap.vsockRPCI < r.trips {
			return nil, fmt.Errorf("%s: %d RPCIs over the backdoor and %d over vsock for %d round trips: not all over vsock", w, r.trap.backdoorRPCI, r.trap.vsockRPCI, r.trips)
		}
		rows = append(rows, row{
			What:      "HGFS over vsock under the trap (ours, as on a VM with vsock): " + w,
			Ours:      fmt.Sprintf("%s, %d round trips%s", r.show(), r.trips, r.perTrip()),
			Reference: "— (open-vm-tools' vmhgfs-fuse has no vsock path)",
			Notes:     fmt.Sprintf("vmhgfs-fuse --rpc auto under vmxsim run; trap stops %d, vsock connections %d (remounts open them; the data path never stops)", r.trap.stops, r.trap.vsockConns),
		})
	}
	return rows, nil
}

// perTrip is ", X ms per round trip" for a timed (not a throughput)
// workload that made round trips.
func (r result) perTrip() string {
	if r.bytes > 0 || r.trips == 0 {
		return ""
	}
	return fmt.Sprintf(" (%.3f ms each)", r.d.Seconds()*1e3/float64(r.trips))
}
