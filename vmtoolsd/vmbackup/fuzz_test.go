package vmbackup

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/rpc"
)

func lines(f *testing.F, name string) []string {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, strings.ReplaceAll(sc.Text(), `\0`, "\x00"))
	}
	return out
}

// FuzzParseStart: the vmbackup.start decoder never panics, and what it
// accepts is printable ASCII within MaxStartArgs whose first token is an
// integer. Seeds: testdata/start-args.txt (\0 for NUL).
func FuzzParseStart(f *testing.F) {
	for _, s := range lines(f, "start-args.txt") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseStart(b)
		if err != nil {
			return
		}
		if len(b) > MaxStartArgs || bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("accepted %q", b)
		}
		if a.Bare != (len(b) == 0) || (a.Volumes != "" && !strings.HasPrefix(a.Volumes, " ")) {
			t.Fatalf("%q -> %+v", b, a)
		}
	})
}

// FuzzParseMountInfo: the mountinfo decoder never panics; every mount it
// returns has an absolute path and a major:minor, and the selection never
// returns a mount twice or one of a remote or pseudo type. Seeds:
// testdata/mountinfo.txt.
func FuzzParseMountInfo(f *testing.F) {
	b, err := os.ReadFile("testdata/mountinfo.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, l := range bytes.Split(b, []byte("\n")) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, _, _ := ParseMountInfo(bytes.NewReader(b))
		for _, m := range ms {
			if !strings.HasPrefix(m.Path, "/") || !strings.Contains(m.Dev, ":") {
				t.Fatalf("%q -> %+v", b, m)
			}
		}
		sel, _ := SelectMounts(ms, "")
		seen := map[string]bool{}
		for _, m := range sel {
			if seen[m.Dev] || remoteTypes[m.FSType] || pseudoTypes[m.FSType] {
				t.Fatalf("selected %+v", m)
			}
			seen[m.Dev] = true
		}
	})
}

// FuzzGuardLines: the thaw guard's decoder of the daemon's lines never
// panics and only ever lists absolute paths that were settled frozen or
// are pending. Seeds: testdata/guard-lines.txt.
func FuzzGuardLines(f *testing.F) {
	seed := lines(f, "guard-lines.txt")
	f.Add(strings.Join(seed, "\n"))
	for _, s := range seed {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		st := &GuardState{}
		for l := range strings.SplitSeq(in, "\n") {
			st.ParseGuardLine(l)
		}
		for _, p := range st.thawList() {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("%q -> thaw %q", in, p)
			}
		}
	})
}

// FuzzCommands: any host command bytes get a framed reply, and nothing is
// frozen unless a well-formed vmbackup.start came first (fake Freezer).
func FuzzCommands(f *testing.F) {
	for _, s := range []string{"vmbackup.start 1", "vmbackup.abort", "vmbackup.snapshotDone", "vmbackup.snapshotCompleted", "vmbackup.start \xff", "vmbackup.start 1\x00", "vmbackup.startx"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		fr := newFakeFreezer()
		svc := &Service{RPCI: senderFunc(func(context.Context, []byte) ([]byte, error) { return []byte{}, nil }), Freezer: fr,
			Mounts: func() ([]Mount, error) { return testMounts, nil }, Sync: func() {}, Scripts: &Scripts{Dir: "/nonexistent", PreFreeze: "-", PostThaw: "-"}}
		mux := &rpc.Mux{}
		svc.Register(mux)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { svc.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		reply := mux.Dispatch(ctx, cmd)
		if !bytes.HasPrefix(reply, []byte("OK ")) && !bytes.HasPrefix(reply, []byte("ERROR ")) || bytes.Contains(reply, []byte("internal error")) {
			t.Fatalf("%q -> %q", cmd, reply)
		}
		name, args := rpc.SplitCommand(cmd)
		if _, err := ParseStart(args); name != CmdStart || err != nil {
			if bytes.HasPrefix(reply, []byte("OK ")) || len(fr.Log()) != 0 || svc.State() != Idle {
				t.Fatalf("%q -> %q, froze %q, state %v", cmd, reply, fr.Log(), svc.State())
			}
		}
	})
}
