package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/hgfswork"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/transport"
)

// rawRates is what the transport itself carries, in MB/s, one request in
// flight: RPCI messages of 64 KiB (the VMX's cap on a guest message),
// and HGFS WRITE_V3 requests and READ_V3 replies of the largest sizes
// the session allows, sent by the HGFS client with no FUSE in between.
type rawRates struct {
	rpci64, write, read float64
	// writeSize and readSize are the bytes per WRITE_V3 and READ_V3.
	writeSize, readSize int
}

// rawSize is how much the raw HGFS rates move each way.
const rawSize = benchSeqSize

// rpci64 is an info-set whose message is exactly 64 KiB.
func rpci64() string {
	const head = "info-set guestinfo.raw "
	return head + strings.Repeat("a", hgfsproto.MaxGuestMessage-len(head))
}

func mbps(bytes int64, d time.Duration) float64 { return float64(bytes) / d.Seconds() / 1e6 }

// rawRatesTrap measures rawRates under `vmxsim run --no-vsock` (the
// backdoor, HB path) with bdprobe.
func (e *env) rawRatesTrap(ctx context.Context, parent string) (rawRates, error) {
	var r rawRates
	share, err := os.MkdirTemp(parent, "raw-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(share)
	const n = 200
	out, err := e.trapRun(ctx, false, []string{"--share", "s=" + share, "--log-level", "error"},
		fmt.Sprintf("bdprobe rpci %d '%s' && bdprobe hgfsraw write s/raw %d && bdprobe hgfsraw read s/raw %d", n, rpci64(), rawSize, rawSize))
	if err != nil {
		return r, err
	}
	f := strings.Fields(out)
	if len(f) != 5 {
		return r, fmt.Errorf("bdprobe: %q", out)
	}
	var ds [3]time.Duration
	for i, l := range []string{f[0], f[1], f[3]} {
		if ds[i], err = nsLine(l); err != nil || ds[i] <= 0 {
			return r, fmt.Errorf("bdprobe: %q", out)
		}
	}
	r = rawRates{rpci64: mbps(hgfsproto.MaxGuestMessage, ds[0]), write: mbps(rawSize, ds[1]), read: mbps(rawSize, ds[2])}
	if _, err := fmt.Sscan(f[2]+" "+f[4], &r.writeSize, &r.readSize); err != nil {
		return r, fmt.Errorf("bdprobe: %q", out)
	}
	return r, nil
}

// rawRatesUnix measures rawRates over unix:DIR of a running simulator
// whose share "s" is the directory share, in process.
func rawRatesUnix(ctx context.Context, simDir string) (rawRates, error) {
	var r rawRates
	tr := transport.New(transport.Config{Mode: transport.Mode{Kind: transport.Unix, Dir: simDir}})
	rc := &rpc.Client{Dial: tr.DialRPCI}
	defer rc.Close()
	msg := []byte(rpci64())
	const n = 200
	var ds []time.Duration
	for range n {
		start := time.Now()
		if _, err := rc.Call(ctx, msg); err != nil {
			return r, fmt.Errorf("RPCI of 64 KiB: %w", err)
		}
		ds = append(ds, time.Since(start))
	}
	r.rpci64 = mbps(hgfsproto.MaxGuestMessage, median(ds))
	c, err := hgfs.New(ctx, hgfs.Config{Transport: hgfs.NewRPCTransport(tr.DialRPCI, 1, nil)})
	if err != nil {
		return r, err
	}
	defer c.Close(ctx)
	r.writeSize, r.readSize = c.Sizes().MaxWrite, c.Sizes().MaxRead
	path := hgfs.Join("s", "raw-"+filepath.Base(simDir))
	d, err := hgfswork.RawIO(ctx, c, path, rawSize, true)
	if err != nil {
		return r, err
	}
	r.write = mbps(rawSize, d)
	if d, err = hgfswork.RawIO(ctx, c, path, rawSize, false); err != nil {
		return r, err
	}
	r.read = mbps(rawSize, d)
	return r, c.Remove(ctx, path)
}

// rawRows are the rows of the transport's rates and the sequential
// workloads' share of them.
func rawRows(where string, raw rawRates, write, read result) []row {
	pct := func(r result, rate float64) string {
		if r.bytes == 0 || r.d <= 0 || rate <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.0f%%", 100*mbps(r.bytes, r.d)/rate)
	}
	return []row{
		{fmt.Sprintf("HGFS %s: transport payload rate, RPCI messages of 64 KiB (info-set, median of 200)", where), fmt.Sprintf("%.0f MB/s", raw.rpci64), "—", "one channel, one message in flight: the most a guest can send to the VMX per message"},
		{fmt.Sprintf("HGFS %s: transport payload rate, WRITE_V3 of %d bytes (the largest under the 64 KiB cap), 256 MiB", where, raw.writeSize), fmt.Sprintf("%.0f MB/s", raw.write), "—", fmt.Sprintf("the HGFS client alone on one channel, no FUSE; the mount's 256 MiB sequential write is %s of it (target ≥ 90%%)", pct(write, raw.write))},
		{fmt.Sprintf("HGFS %s: transport payload rate, READ_V3 of %d bytes (the negotiated size), 256 MiB", where, raw.readSize), fmt.Sprintf("%.0f MB/s", raw.read), "—", fmt.Sprintf("the HGFS client alone on one channel, no FUSE; the mount's 256 MiB sequential read is %s of it (target ≥ 90%%)", pct(read, raw.read))},
	}
}
