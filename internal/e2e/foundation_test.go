package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/datamap"
	"github.com/govmtools/govmtools/rpc/transport"
	"github.com/govmtools/govmtools/vmxsim"
)

// value returns a test value of n bytes with spaces in it.
func value(n int) string {
	const pat = "ab cd-ef_gh ij"
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(pat)
	}
	v := b.String()[:n]
	if strings.HasSuffix(v, " ") {
		v = v[:n-1] + "x" // a trailing space would be trimmed by shells in scripts; keep values comparable
	}
	return v
}

func TestRPCToolGuestinfoRoundTrip(t *testing.T) {
	sim := testutil.StartSim(t)
	ctl := vmxsim.NewCtl(sim.Dir)
	lengths := []int{1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 16, 60 << 10, 60<<10 + 1, 60<<10 + 2, 60<<10 + 3}
	for _, n := range lengths {
		v := value(n)
		key := "guestinfo.len" + strconv.Itoa(n)
		if out, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "info-set "+key+" "+v); code != 0 || out != "\n" {
			t.Fatalf("info-set len %d: code %d stdout %q stderr %q", n, code, out, errOut)
		}
		out, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "info-get "+key)
		if code != 0 || out != v+"\n" {
			t.Fatalf("info-get len %d: code %d, got %d bytes (stderr %q)", n, code, len(out), errOut)
		}
		st, err := ctl.State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Guestinfo["len"+strconv.Itoa(n)] != v {
			t.Fatalf("ctl state lacks len%d", n)
		}
	}
	// The environment variable selects the transport too.
	t.Setenv(transport.EnvRPC, sim.Mode())
	if out, _, code := sim.Run(t, "vmware-rpctool", "info-get guestinfo.len3"); code != 0 || out != value(3)+"\n" {
		t.Fatalf("GOVMTOOLS_RPC: code %d out %q", code, out)
	}
}

var logLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\| vcpu-0\| I125: Guest: (.*)$`)

func TestRPCToolLogAndErrors(t *testing.T) {
	sim := testutil.StartSim(t)
	texts := []string{"hello from the guest", "a", "ab", "abc", "abcd", value(1020)}
	for _, txt := range texts {
		if _, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "log "+txt); code != 0 {
			t.Fatalf("log: %d %s", code, errOut)
		}
	}
	raw, err := os.ReadFile(filepath.Join(sim.Dir, "vmware.log"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if m := logLine.FindStringSubmatch(line); m != nil {
			got = append(got, m[1])
		}
	}
	if strings.Join(got, "\n") != strings.Join(texts, "\n") {
		t.Fatalf("vmware.log guest lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(texts, "\n"))
	}

	// Unknown command: the host's "0 " reason on stderr, exit 1.
	out, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "no.such.command arg")
	if code != 1 || out != "" || errOut != "Unknown command\n" {
		t.Fatalf("unknown command: code %d stdout %q stderr %q", code, out, errOut)
	}
	// Missing key.
	if _, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "info-get guestinfo.nope"); code != 1 || errOut != "No value found\n" {
		t.Fatalf("missing key: %d %q", code, errOut)
	}
	// Over 64 KiB: refused before sending.
	if _, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "info-set guestinfo.big "+value(64<<10)); code != 1 || !strings.Contains(errOut, "64 KiB") {
		t.Fatalf("oversized: %d %q", code, errOut)
	}
	// No simulator: transport failure, exit 2.
	if _, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", "unix:"+t.TempDir(), "info-get guestinfo.x"); code != 2 || !strings.Contains(errOut, "cannot reach the VMX") {
		t.Fatalf("no vmx: %d %q", code, errOut)
	}
	// Not a VMware VM: auto refuses without faulting.
	if _, errOut, code := sim.Run(t, "vmware-rpctool", "--rpc", "auto", "info-get guestinfo.x"); code != 2 || !strings.Contains(errOut, "not a VMware VM") {
		t.Fatalf("auto outside VMware: %d %q", code, errOut)
	}
	if out, _, code := sim.Run(t, "vmware-checkvm", "--rpc", sim.Mode()); code != 0 || !strings.Contains(out, "version 6") {
		t.Fatalf("checkvm: %d %q", code, out)
	}
	if _, _, code := sim.Run(t, "vmware-checkvm", "--rpc", "unix:"+t.TempDir()); code != 1 {
		t.Fatalf("checkvm without vmx: %d", code)
	}
}

// rawFrame sends bytes on a fresh rpci.sock connection and returns what
// comes back before the simulator closes it (or after 2 s).
func rawFrame(t *testing.T, dir string, b []byte) ([]byte, bool) {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(dir, "rpci.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(b)
	c.(*net.UnixConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var all []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			return all, !timedOut
		}
	}
}

func TestSimulatorSurvivesBadInput(t *testing.T) {
	sim := testutil.StartSim(t)
	good := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte("log ok"), HasPayload: true}))
	u32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	cases := map[string][]byte{
		"truncated frame":  good[:len(good)-3],
		"oversized frame":  u32(0x7fffffff, 1, 1),
		"unknown type":     datamap.AppendFrame(nil, u32(7, 1, 0, 0)),
		"no type field":    datamap.AppendFrame(nil, datamap.Encode(datamap.Map{2: {Type: datamap.TypeString, Str: []byte("x")}})),
		"payload too long": datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: make([]byte, 64<<10+1)})),
	}
	for name, b := range cases {
		reply, closed := rawFrame(t, sim.Dir, b)
		if !closed || len(reply) != 0 {
			t.Errorf("%s: closed=%v reply %q; want the connection closed without a reply", name, closed, reply)
		}
	}
	// A garbage payload in a valid packet is answered, not dropped.
	garbage := datamap.AppendFrame(nil, datamap.EncodePacket(datamap.Packet{Type: datamap.PacketData, Payload: []byte("\xff\x00\x01 garbage"), HasPayload: true, FastClose: true}))
	reply, _ := rawFrame(t, sim.Dir, garbage)
	if len(reply) < 4 {
		t.Fatalf("garbage payload: no reply")
	}
	p, err := datamap.DecodePacket(reply[4:])
	if err != nil || string(p.Payload) != "0 Unknown command" {
		t.Fatalf("garbage payload reply %+v %v", p, err)
	}
	// Every reason was logged, and the simulator still serves.
	log, _ := os.ReadFile(filepath.Join(sim.Dir, "vmware.log"))
	for _, want := range []string{"truncated", "too large", "unknown field type", "no TYPE field", "exceeds 64 KiB"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("vmware.log has no reason mentioning %q:\n%s", want, log)
		}
	}
	if out, _, code := sim.Run(t, "vmware-rpctool", "--rpc", sim.Mode(), "info-get guestinfo.x"); code != 1 {
		t.Fatalf("simulator stopped serving: %d %q", code, out)
	}
}

// freezable wraps a guest channel so the test can make the guest stop
// answering, as a hung vmtoolsd would.
type freezable struct {
	rpc.EventChannel
	frozen *atomic.Bool
}

func (f freezable) Receive(ctx context.Context) ([]byte, error) {
	msg, err := f.EventChannel.Receive(ctx)
	for f.frozen.Load() && err == nil {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return msg, err
}

func (f freezable) Ping(ctx context.Context) error {
	if f.frozen.Load() {
		return nil
	}
	return f.EventChannel.Ping(ctx)
}

// TestTCLOHeartbeat connects a guest-side rpc.Loop to `vmxsim serve`: the
// reset is answered "OK ATR toolbox", pings keep the heartbeat green, ctl
// tclo reaches the guest's handlers, and a guest that stops answering goes
// yellow and then red.
func TestTCLOHeartbeat(t *testing.T) {
	sim := testutil.StartSim(t, "--ping-interval", "100ms", "--exchange-timeout", "30s")
	ctl := vmxsim.NewCtl(sim.Dir)
	tr := transport.New(transport.Config{Mode: transport.Mode{Kind: transport.Unix, Dir: sim.Dir}})
	var frozen atomic.Bool
	mux := &rpc.Mux{}
	mux.HandleFunc("Echo", func(ctx context.Context, args []byte) ([]byte, error) { return args, nil })
	var resets atomic.Int32
	loop := &rpc.Loop{
		App: "toolbox",
		Mux: mux,
		Dial: func(ctx context.Context) (rpc.Channel, error) {
			ch, err := tr.DialTCLO(ctx)
			if err != nil {
				return nil, err
			}
			return freezable{ch.(rpc.EventChannel), &frozen}, nil
		},
		OnReset: func(context.Context) { resets.Add(1) },
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { loop.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	state := func() vmxsim.State {
		s, err := ctl.State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	testutil.WaitFor(t, 10*time.Second, "tools running with a green heartbeat", func() bool {
		s := state()
		return s.Tools.Running && s.Tools.Heartbeat == vmxsim.HeartbeatGreen
	})
	if resets.Load() != 1 {
		t.Fatalf("OnReset ran %d times", resets.Load())
	}
	// Green holds over many ping intervals.
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		if hb := state().Tools.Heartbeat; hb != vmxsim.HeartbeatGreen {
			t.Fatalf("heartbeat %s while the guest answers", hb)
		}
	}
	if out, _, code := testutil.RunBinary(t, filepath.Join(sim.Bin, "vmxsim"), "ctl", "--dir", sim.Dir, "tclo", "Echo hi there"); code != 0 || out != "OK hi there\n" {
		t.Fatalf("ctl tclo Echo: %d %q", code, out)
	}
	if r, err := ctl.TCLO(t.Context(), "OS_Unknown"); err != nil || r != "ERROR Unknown Command" {
		t.Fatalf("unknown tclo: %q %v", r, err)
	}

	frozen.Store(true)
	var sawYellow bool
	testutil.WaitFor(t, 10*time.Second, "red heartbeat after the guest stops answering", func() bool {
		hb := state().Tools.Heartbeat
		sawYellow = sawYellow || hb == vmxsim.HeartbeatYellow
		return hb == vmxsim.HeartbeatRed
	})
	if !sawYellow {
		t.Error("heartbeat went red without passing yellow")
	}
	if !state().Tools.Running {
		t.Error("tools stopped counting as running while the channel is open")
	}
	frozen.Store(false)
	testutil.WaitFor(t, 10*time.Second, "green again once the guest answers", func() bool {
		return state().Tools.Heartbeat == vmxsim.HeartbeatGreen
	})
}

// TestToolsGoneTurnsGray: when the guest's channel closes, the heartbeat
// degrades and, after the tools timeout, tools are not running (gray).
func TestToolsGoneTurnsGray(t *testing.T) {
	sim := testutil.StartSim(t, "--ping-interval", "100ms", "--tools-timeout", "1s")
	ctl := vmxsim.NewCtl(sim.Dir)
	tr := transport.New(transport.Config{Mode: transport.Mode{Kind: transport.Unix, Dir: sim.Dir}})
	loop := &rpc.Loop{App: "toolbox", Mux: &rpc.Mux{}, Dial: tr.DialTCLO}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	testutil.WaitFor(t, 10*time.Second, "green", func() bool {
		s, _ := ctl.State(t.Context())
		return s.Tools.Heartbeat == vmxsim.HeartbeatGreen
	})
	cancel()
	<-done
	var seq []string
	testutil.WaitFor(t, 10*time.Second, "gray after the tools timeout", func() bool {
		s, _ := ctl.State(t.Context())
		if len(seq) == 0 || seq[len(seq)-1] != s.Tools.Heartbeat {
			seq = append(seq, s.Tools.Heartbeat)
		}
		return s.Tools.Heartbeat == vmxsim.HeartbeatGray && !s.Tools.Running
	})
	if got := strings.Join(seq, " "); got != "green yellow red gray" {
		t.Fatalf("heartbeat went %s, want green yellow red gray", got)
	}
}
