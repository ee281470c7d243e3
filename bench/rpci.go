package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/transport"
)

// benchRPCI measures an RPCI round trip over a persistent channel to
// `vmxsim serve`, and the wall time of one `vmware-rpctool info-get`
// invocation (scripts such as cloud-init call it hundreds of times).
func benchRPCI(ctx context.Context, e *env) ([]row, error) {
	s, err := e.startSim(ctx)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	tr := transport.New(transport.Config{Mode: transport.Mode{Kind: transport.Unix, Dir: s.dir}})
	c := &rpc.Client{Dial: tr.DialRPCI}
	defer c.Close()
	if _, err := c.CallString(ctx, "info-set guestinfo.k v"); err != nil {
		return nil, err
	}
	const n = 5000
	var rtts []time.Duration
	for range n {
		start := time.Now()
		if _, err := c.CallString(ctx, "info-get guestinfo.k"); err != nil {
			return nil, err
		}
		rtts = append(rtts, time.Since(start))
	}
	var walls []time.Duration
	for range 50 {
		start := time.Now()
		out, err := exec.CommandContext(ctx, filepath.Join(e.bin, "vmware-rpctool"), "--rpc", "unix:"+s.dir, "info-get guestinfo.k").Output()
		if err != nil || string(out) != "v\n" {
			return nil, fmt.Errorf("vmware-rpctool: %q %v", out, err)
		}
		walls = append(walls, time.Since(start))
	}
	return []row{
		{"RPCI round trip, persistent channel, unix:DIR (median of 5000)", micros(median(rtts)), "—", "info-get over vmxsim's DataMap socket (the vsock framing); the backdoor figures are the trap rows"},
		{"`vmware-rpctool 'info-get guestinfo.k'` wall time, unix:DIR (median of 50)", millis(median(walls)), cited("1–2 ms on VMware", "open-vm-tools#377"), "process start, dial, one round trip, exit"},
	}, nil
}
