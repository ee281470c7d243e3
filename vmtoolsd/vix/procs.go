package vix

import (
	"bytes"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// listProcesses answers ListProcessesEx (186) for user: the started
// programs first (running and exited, with exit code and end time), then
// the other processes of /proc; with pids, only those (unknown ones are
// left out). A list too big for one reply is chunked as open-vm-tools
// chunks it (vixproto.AppendProcChunk): kept under a key for that user,
// and sent from the offset each later request names.
func (s *Service) listProcesses(req *vixproto.Request, user string) (vixproto.Error, uint32, []byte) {
	p, err := vixproto.ParseListProcesses(req.Body)
	if err != nil {
		return err.(vixproto.Error), 0, nil
	}
	if p.Key != 0 {
		return s.lists.next(p.Key, p.Offset, user, s.now())
	}
	full := s.processList(p.Pids)
	if len(full)+1+vixproto.ProcChunkFirstHeader <= vixproto.MaxResultBuffer {
		return 0, 0, full
	}
	// Kept with its NUL, which totalSize counts (as open-vm-tools').
	key := s.lists.put(user, append(full, 0), s.now())
	return s.lists.next(key, 0, user, s.now())
}

// processList is the whole <proc> list.
func (s *Service) processList(pids []uint64) []byte {
	want := map[uint64]bool{}
	for _, pid := range pids {
		want[pid] = true
	}
	match := func(pid uint64) bool { return len(want) == 0 || want[pid] }
	var out []byte
	seen := map[uint64]bool{}
	s.mu.Lock()
	s.reap()
	recs := make([]vixproto.Process, 0, len(s.procs))
	for _, pr := range s.procs {
		recs = append(recs, pr.Process)
	}
	s.mu.Unlock()
	for i := len(recs) - 1; i >= 0; i-- { // newest record of a reused pid wins
		pr := recs[i]
		if seen[pr.Pid] || !match(pr.Pid) {
			continue
		}
		seen[pr.Pid] = true
		out = vixproto.AppendProcess(out, &pr)
	}
	for _, pr := range procList(want, seen) {
		if len(out) > maxProcList {
			break
		}
		out = vixproto.AppendProcess(out, &pr)
	}
	return out
}

// Chunked process lists: how long one is kept for the host to fetch
// (open-vm-tools: 10 minutes), how many are kept at once, and the
// largest list built.
const (
	procListRetention = 10 * time.Minute
	maxProcLists      = 16
	maxProcList       = 16 << 20
)

// procLists are the process lists being sent in chunks.
type procLists struct {
	mu      sync.Mutex
	lastKey uint32
	m       map[uint32]*procListEntry
}

type procListEntry struct {
	user    string
	data    []byte
	expires time.Time
}

// put keeps data for user and returns its key (never 0); expired lists
// and, past maxProcLists, the one expiring first are dropped.
func (l *procLists) put(user string, data []byte, now time.Time) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[uint32]*procListEntry{}
	}
	var oldest uint32
	for k, e := range l.m {
		if now.After(e.expires) {
			delete(l.m, k)
		} else if oldest == 0 || e.expires.Before(l.m[oldest].expires) {
			oldest = k
		}
	}
	if len(l.m) >= maxProcLists {
		delete(l.m, oldest)
	}
	l.lastKey++
	if l.lastKey == 0 {
		l.lastKey = 1
	}
	l.m[l.lastKey] = &procListEntry{user: user, data: data, expires: now.Add(procListRetention)}
	return l.lastKey
}

// next is the chunk of list key at offset; an unknown or expired key,
// another user's list or an offset past the end is VIX_E_FAIL, as in
// open-vm-tools. The list is dropped once its last byte is sent.
func (l *procLists) next(key, offset uint32, user string, now time.Time) (vixproto.Error, uint32, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[key]
	if e == nil || now.After(e.expires) || e.user != user || int64(offset) > int64(len(e.data)) {
		return vixproto.ErrFail, 0, nil
	}
	hdr := vixproto.ProcChunkLaterHeader
	if offset == 0 {
		hdr = vixproto.ProcChunkFirstHeader
	}
	n := min(len(e.data)-int(offset), vixproto.MaxResultBuffer-hdr)
	left := len(e.data) - int(offset) - n
	// The list's NUL, in the last chunk, ends the reply's text.
	data := bytes.TrimSuffix(e.data[offset:int(offset)+n], []byte{0})
	out := vixproto.AppendProcChunk(nil, key, len(e.data), offset, left, data)
	if left == 0 {
		delete(l.m, key)
	}
	return 0, 0, out
}

// procList reads /proc: pid, command name, command line, owner, start
// time (Unix seconds).
func procList(want, seen map[uint64]bool) []vixproto.Process {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	btime := bootTime()
	users := map[uint32]string{}
	var out []vixproto.Process
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || seen[pid] || (len(want) > 0 && !want[pid]) {
			continue
		}
		dir := "/proc/" + e.Name()
		var st syscall.Stat_t
		if syscall.Stat(dir, &st) != nil {
			continue
		}
		pr := vixproto.Process{Pid: pid}
		if n, ok := users[st.Uid]; ok {
			pr.User = n
		} else if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
			pr.User, users[st.Uid] = u.Username, u.Username
		} else {
			pr.User = strconv.Itoa(int(st.Uid))
		}
		if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
			pr.CmdLine = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		if b, err := os.ReadFile(dir + "/stat"); err == nil {
			s := string(b)
			if i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')'); i >= 0 && j > i {
				pr.Cmd = s[i+1 : j]
				if f := strings.Fields(s[j+1:]); len(f) > 19 {
					if t, err := strconv.ParseInt(f[19], 10, 64); err == nil {
						pr.Start = btime + t/100 // USER_HZ
					}
				}
			}
		}
		if pr.CmdLine == "" {
			pr.CmdLine = pr.Cmd
		}
		out = append(out, pr)
	}
	return out
}

func bootTime() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
