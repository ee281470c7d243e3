package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/govmtools/govmtools/internal/netnstest"
)

// churnWindow is how long the guest-info churn scene churns.
var churnWindow = flag.Duration("churn", time.Minute, "how long the guest-info churn scene churns (shorten for a quick run)")

func init() {
	benchmarks = append(benchmarks, benchmark{"churn", benchChurn})
}

// churnLive is how many containers are up at a time in the scene.
const churnLive = 5

// benchChurn is a container host starting and stopping containers ten
// times a second: in the scene's VM namespace each step adds a veth on
// docker0 whose peer sits in the Peer namespace, plus a /32 route to the
// container via eth0 (so that every step changes what guest info
// reports: the worst case for the rate), and removes the container of
// churnLive steps earlier. Ours (vmtoolsd over unix:DIR) and Debian's
// (its guestInfo plugin under the trap) watch the same namespace, each
// against its own simulator. Measured: NIC info messages the VMX accepted
// during the churn (vmxsim's nicInfoUpdates, changed or not), the most in
// any one-second sample, and the time from the last step until `ctl
// state` shows exactly the containers' routes left.
func benchChurn(ctx context.Context, e *env) ([]row, error) {
	if ok, what := netnstest.Available(); !ok {
		return nil, fmt.Errorf("needs %s", what)
	}
	scene, err := netnstest.NewScene(fmt.Sprintf("churn%d", os.Getpid()))
	if err != nil {
		return nil, err
	}
	defer scene.Delete()
	var daemons []*giDaemon
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	ours, err := e.startOurGuestInfo(ctx, scene.VM, "")
	if err != nil {
		return nil, err
	}
	daemons = append(daemons, ours)
	if peer := peerRoot(); peer != "" {
		deb, err := e.startDebianGuestInfo(ctx, scene.VM, peer, "")
		if err != nil {
			return nil, err
		}
		daemons = append(daemons, deb)
	}
	// Ours reports at once; Debian's first gather comes 30 s after start.
	for _, d := range daemons {
		if _, err := d.waitIP(ctx, netnstest.SceneIPv4, 60*time.Second, 20*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%s: %w", d.name, err)
		}
	}

	type tally struct {
		start, last, maxPerSample int
		final                     time.Duration
		finalErr                  error
	}
	tallies := make([]tally, len(daemons))
	for i, d := range daemons {
		st, err := churnStateOf(ctx, d)
		if err != nil {
			return nil, err
		}
		tallies[i].start, tallies[i].last = st.Guest.NicInfoUpdates, st.Guest.NicInfoUpdates
	}
	route := func(i int) string { return fmt.Sprintf("10.99.%d.%d/32", i/250%250, i%250+1) }
	step := time.NewTicker(100 * time.Millisecond)
	defer step.Stop()
	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	t0 := time.Now()
	n := 0
	for time.Since(t0) < *churnWindow {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sample.C:
			for i, d := range daemons {
				st, err := churnStateOf(ctx, d)
				if err != nil {
					return nil, err
				}
				tallies[i].maxPerSample = max(tallies[i].maxPerSample, st.Guest.NicInfoUpdates-tallies[i].last)
				tallies[i].last = st.Guest.NicInfoUpdates
			}
		case <-step.C:
			lines := []string{
				fmt.Sprintf("link add cv%d type veth peer name cp%d netns %s", n, n, scene.Peer.Name),
				fmt.Sprintf("link set cv%d master docker0", n),
				fmt.Sprintf("link set cv%d up", n),
				"route add " + route(n) + " dev eth0",
			}
			if old := n - churnLive; old >= 0 {
				lines = append(lines, fmt.Sprintf("link del cv%d", old), "route del "+route(old)+" dev eth0")
			}
			if err := scene.VM.Batch(lines); err != nil {
				return nil, fmt.Errorf("churn step %d: %w", n, err)
			}
			n++
		}
	}
	stopped := time.Now()
	churned := stopped.Sub(t0).Seconds()
	var want []string
	for i := max(0, n-churnLive); i < n; i++ {
		want = append(want, route(i))
	}
	slices.Sort(want)
	for i, d := range daemons {
		st, err := churnStateOf(ctx, d)
		if err != nil {
			return nil, err
		}
		tallies[i].last = st.Guest.NicInfoUpdates
		limit := 5 * time.Second
		if i > 0 {
			limit = 40 * time.Second // Debian's polls every 30 s
		}
		tallies[i].final, tallies[i].finalErr = waitRoutes(ctx, d, want, stopped, limit)
	}

	cell := func(i int) string {
		t := tallies[i]
		upd := t.last - t.start
		final := fmt.Sprintf("final state shown %.2f s after the last step", t.final.Seconds())
		if t.finalErr != nil {
			final = t.finalErr.Error()
		}
		return fmt.Sprintf("%.2f/s (%d in %.0f s, at most %d in a 1 s sample); %s", float64(upd)/churned, upd, churned, t.maxPerSample, final)
	}
	ref := "— (Debian's open-vm-tools unavailable: make test-deps as root)"
	if len(daemons) > 1 {
		ref = cell(1) + " (Debian's vmtoolsd, default 30 s poll, under the trap)"
	}
	notes := fmt.Sprintf("%d container steps, 10/s: a veth on docker0 (peer in another namespace) and a /32 route via eth0 each, %d containers up at a time; NIC info messages the VMX accepted (vmxsim nicInfoUpdates); target at most 1/s and the final routes within 1 s", n, churnLive)
	if tallies[0].finalErr != nil {
		return []row{{"Guest info under container churn: NIC info updates leaving the guest", cell(0), ref, notes}}, fmt.Errorf("ours: %w", tallies[0].finalErr)
	}
	return []row{{"Guest info under container churn: NIC info updates leaving the guest", cell(0) + " (ours, over unix:DIR)", ref, notes}}, nil
}

// churnState is the part of `ctl state` the churn scene reads.
type churnState struct {
	Guest struct {
		Routes []struct {
			Dest string `json:"dest"`
		} `json:"routes"`
		NicInfoUpdates int `json:"nicInfoUpdates"`
	} `json:"guest"`
}

func churnStateOf(ctx context.Context, d *giDaemon) (churnState, error) {
	var st churnState
	return st, d.decodeState(ctx, &st)
}

// waitRoutes polls until the churn routes (10.99/16) in `ctl state` are
// exactly want, and returns the time since since.
func waitRoutes(ctx context.Context, d *giDaemon, want []string, since time.Time, limit time.Duration) (time.Duration, error) {
	var got []string
	for time.Since(since) < limit {
		st, err := churnStateOf(ctx, d)
		if err != nil {
			return 0, err
		}
		got = got[:0]
		for _, r := range st.Guest.Routes {
			if strings.HasPrefix(r.Dest, "10.99.") {
				got = append(got, r.Dest)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return time.Since(since), nil
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%s: final routes not shown within %v (shown %v, want %v)", d.name, limit, got, want)
}
