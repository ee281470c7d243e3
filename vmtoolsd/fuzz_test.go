package vmtoolsd_test

import (
	"bufio"
	"bytes"
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/rpctest"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/power"
	"github.com/govmtools/govmtools/vmtoolsd/timesync"
)

// FuzzTCLO feeds arbitrary host commands to the service's command table:
// every reply must be framed "OK " or "ERROR " and no handler may panic
// (the Mux would turn a panic into "ERROR internal error", which is
// caught here). Seeds: testdata/tclo-commands.txt, one command per line
// with \x00 written as \0.
func FuzzTCLO(f *testing.F) {
	seeds, err := os.ReadFile("testdata/tclo-commands.txt")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(seeds))
	for sc.Scan() {
		f.Add([]byte(strings.ReplaceAll(sc.Text(), `\0`, "\x00")))
	}
	host := &rpctest.RPCIHost{Reply: func([]byte) []byte { return []byte("1 ") }}
	svc := vmtoolsd.New(vmtoolsd.Config{
		DialTCLO:  func(context.Context) (rpc.Channel, error) { return nil, context.Canceled },
		RPCI:      &rpc.Client{Dial: host.Dial},
		PrimaryIP: fixedIP{},
		Plugins: []vmtoolsd.Plugin{
			&power.Ops{RPCI: &rpc.Client{Dial: host.Dial}, Runner: &power.RecordRunner{}, ConfDir: f.TempDir()},
			&timesync.Syncer{Clock: timesync.LogClock{}},
		},
	})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		reply := svc.Mux().Dispatch(context.Background(), cmd)
		if !bytes.HasPrefix(reply, []byte("OK ")) && !bytes.HasPrefix(reply, []byte("ERROR ")) {
			t.Fatalf("%q -> unframed reply %q", cmd, reply)
		}
		if bytes.Contains(reply, []byte("internal error")) {
			t.Fatalf("%q -> handler panicked: %q", cmd, reply)
		}
	})
}

type fixedIP struct{}

func (fixedIP) PrimaryIP(context.Context) (netip.Addr, error) {
	return netip.MustParseAddr("192.0.2.1"), nil
}
