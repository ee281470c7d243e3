package quiesce

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errNoTools = errors.New("no tools")

// fakeGuest answers TCLO commands as vmtoolsd's vmbackup does in the
// scenario: the events it sends go back through Driver.EventSet from
// its own goroutine, as RPCIs arrive while the host waits.
type fakeGuest struct {
	d        *Driver
	mu       sync.Mutex
	cmds     []string
	frozen   bool
	onStart  func(g *fakeGuest) // events after an accepted start
	onDone   func(g *fakeGuest) // events after snapshotDone
	startErr string             // ERROR reply to start
	wg       sync.WaitGroup
}

func (g *fakeGuest) event(s string) {
	if r := g.d.EventSet([]byte(s + "\x00")); string(r) != "1 " {
		panic("eventSet refused: " + string(r))
	}
}

func (g *fakeGuest) send(_ context.Context, cmd string) ([]byte, error) {
	g.mu.Lock()
	g.cmds = append(g.cmds, cmd)
	g.mu.Unlock()
	switch {
	case strings.HasPrefix(cmd, "vmbackup.start"):
		if g.startErr != "" {
			return []byte("ERROR " + g.startErr), nil
		}
		g.wg.Go(func() { g.onStart(g) })
		return []byte("OK "), nil
	case cmd == "vmbackup.snapshotDone":
		g.mu.Lock()
		was := g.frozen
		g.frozen = false
		g.mu.Unlock()
		if !was {
			return []byte("ERROR Error: no quiesce operation in progress"), nil
		}
		g.wg.Go(func() { g.onDone(g) })
		return []byte("OK "), nil
	case cmd == "vmbackup.abort":
		return []byte("OK "), nil
	}
	return []byte("ERROR Unknown Command"), nil
}

func freezeOK(g *fakeGuest) {
	g.event("reset 0 ")
	time.Sleep(time.Second) // the freeze scripts (simulated time)
	g.mu.Lock()
	g.frozen = true
	g.mu.Unlock()
	g.event("prov.snapshotCommit 0 ")
}

func thawOK(g *fakeGuest) {
	g.event("req.genericManifest 0 /etc/vmware-tools/quiesce_manifest.xml")
	g.event("req.done 0 ")
}

func newGuest(onStart, onDone func(*fakeGuest)) (*fakeGuest, *Driver) {
	g := &fakeGuest{onStart: onStart, onDone: onDone}
	g.d = New(Host{Send: g.send, NoTools: errNoTools})
	return g, g.d
}

func events(r Result) []string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.String())
	}
	return out
}

func TestSnapshotQuiesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, d := newGuest(freezeOK, thawOK)
		taken := 0
		res, err := d.Snapshot(t.Context(), Options{Quiesce: true}, func(context.Context) (func(), error) { taken++; return nil, nil })
		g.wg.Wait()
		if err != nil || !res.Quiesced || taken != 1 {
			t.Fatalf("%+v %v taken %d", res, err, taken)
		}
		want := []string{"reset 0 ", "prov.snapshotCommit 0 ", "req.genericManifest 0 /etc/vmware-tools/quiesce_manifest.xml", "req.done 0 "}
		if got := events(res); !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
		if !slices.Equal(g.cmds, []string{"vmbackup.start 1", "vmbackup.snapshotDone"}) {
			t.Errorf("commands %q", g.cmds)
		}
		if res.StartToCommitMs != 1000 || res.DoneToThawedMs != 0 || res.Manifest == "" {
			t.Errorf("timings/manifest %+v", res)
		}
		st := d.State()
		if len(st.Snapshots) != 1 || st.Snapshots[0].Running || st.EventsAnswered != 4 {
			t.Errorf("state %+v", st)
		}
	})
}

func TestSnapshotWithoutQuiesce(t *testing.T) {
	g, d := newGuest(nil, nil)
	res, err := d.Snapshot(t.Context(), Options{}, nil)
	if err != nil || res.Quiesced || len(g.cmds) != 0 {
		t.Fatalf("%+v %v %q", res, err, g.cmds)
	}
}

func wantFault(t *testing.T, err error, fault string) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) || fe.Fault != fault {
		t.Fatalf("error %v, want fault %s", err, fault)
	}
}

func TestSnapshotFaults(t *testing.T) {
	scriptFails := func(g *fakeGuest) {
		g.event("reset 0 ")
		g.event("req.error 2 Custom quiesce script failed.")
		g.event("req.error 5 'VmBackupOnFreeze' operation failed.")
		g.event("req.done 0 ")
	}
	syncFails := func(g *fakeGuest) {
		g.event("reset 0 ")
		g.event("req.error 3 Error when enabling the sync provider.")
		g.event("req.done 0 ")
	}
	silent := func(g *fakeGuest) { g.event("reset 0 ") }
	// The guest's own timer (3 s) thaws before the host's snapshotDone.
	guestTimeout := func(g *fakeGuest) {
		freezeOK(g)
		time.Sleep(3 * time.Second)
		g.mu.Lock()
		g.frozen = false
		g.mu.Unlock()
		g.event("req.aborted 4 Quiesce canceled.")
		g.event("req.done 0 ")
	}
	for _, tc := range []struct {
		name    string
		start   func(*fakeGuest)
		opts    Options
		fault   string
		cmds    []string
		discard bool
	}{
		{"script", scriptFails, Options{Quiesce: true}, FaultApplication, []string{"vmbackup.start 1"}, false},
		{"sync", syncFails, Options{Quiesce: true}, FaultSnapshot, []string{"vmbackup.start 1"}, false},
		{"silent", silent, Options{Quiesce: true, EventTimeout: Duration(5 * time.Second)}, FaultTimedout, []string{"vmbackup.start 1", "vmbackup.abort"}, false},
		{"done late", guestTimeout, Options{Quiesce: true, DelayDone: Duration(5 * time.Second)}, FaultFilesystem, []string{"vmbackup.start 1", "vmbackup.snapshotDone"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, d := newGuest(tc.start, thawOK)
				discarded := false
				_, err := d.Snapshot(t.Context(), tc.opts, func(context.Context) (func(), error) { return func() { discarded = true }, nil })
				g.wg.Wait()
				wantFault(t, err, tc.fault)
				if !slices.Equal(g.cmds, tc.cmds) || discarded != tc.discard {
					t.Errorf("commands %q discarded %v", g.cmds, discarded)
				}
			})
		})
	}
}

func TestSnapshotAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, d := newGuest(freezeOK, thawOK)
		g.onStart = func(g *fakeGuest) {
			freezeOK(g)
			// The host aborts while holding snapshotDone back.
			if r, err := d.Abort(context.Background()); err != nil || string(r) != "OK " {
				panic("abort")
			}
			g.event("req.aborted 4 Quiesce canceled.")
			g.event("req.done 0 ")
		}
		_, err := d.Snapshot(t.Context(), Options{Quiesce: true, DelayDone: Duration(time.Minute)}, nil)
		g.wg.Wait()
		wantFault(t, err, FaultCanceled)
		if !slices.Equal(g.cmds, []string{"vmbackup.start 1", "vmbackup.abort"}) {
			t.Errorf("commands %q", g.cmds)
		}
	})
}

func TestSnapshotRefusals(t *testing.T) {
	g, d := newGuest(nil, nil)
	g.startErr = "Quiesce operation already in progress."
	_, err := d.Snapshot(t.Context(), Options{Quiesce: true}, nil)
	wantFault(t, err, FaultSnapshot)
	d2 := New(Host{Send: func(context.Context, string) ([]byte, error) { return nil, errNoTools }, NoTools: errNoTools})
	_, err = d2.Snapshot(t.Context(), Options{Quiesce: true}, nil)
	wantFault(t, err, FaultToolsDown)
	if _, err := d2.Abort(t.Context()); err == nil {
		t.Error("abort with nothing running")
	}
}

func TestEventSetAnyGuest(t *testing.T) {
	d := New(Host{})
	for in, want := range map[string]string{
		"reset 0 \x00":                      "1 ",
		"req.keepAlive 0 ":                  "1 ",
		"req.done 0":                        "1 ",
		"req.error 3 Error when notifying.": "1 ",
		"bogus 0 ":                          "0 Error processing event.",
		"reset x ":                          "0 Error processing event.",
		"reset":                             "0 Error processing event.",
		"reset 0 \x01":                      "0 Error processing event.",
		"":                                  "0 Error processing event.",
	} {
		if got := string(d.EventSet([]byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	if st := d.State(); len(st.Stray) != 4 || st.EventsAnswered != 4 {
		t.Errorf("stray %+v", st)
	}
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{"reset 0 ", "req.error 2 Custom quiesce script failed.\x00", "req.done 0", "x", " 1 2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEvent(b)
		if err != nil {
			return
		}
		if e2, err := ParseEvent([]byte(e.String())); err != nil || e2 != e {
			t.Fatalf("%q: %+v does not round-trip (%+v, %v)", b, e, e2, err)
		}
	})
}
