package vix

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// listProcesses answers ListProcessesEx (186): the started programs
// first (running and exited, with exit code and end time), then the
// other processes of /proc; with pids, only those (unknown ones are
// left out). A result too big for one reply is cut at the last whole
// entry (chunking by key/offset is not implemented).
func (s *Service) listProcesses(req *vixproto.Request) (vixproto.Error, uint32, []byte) {
	p, err := vixproto.ParseListProcesses(req.Body)
	if err != nil {
		return err.(vixproto.Error), 0, nil
	}
	if p.Key != 0 || p.Offset != 0 {
		return vixproto.ErrFail, 0, nil
	}
	want := map[uint64]bool{}
	for _, pid := range p.Pids {
		want[pid] = true
	}
	match := func(pid uint64) bool { return len(want) == 0 || want[pid] }
	var out []byte
	add := func(pr *vixproto.Process) bool {
		e := vixproto.AppendProcess(nil, pr)
		if len(out)+len(e) > vixproto.MaxReplyPayload {
			return false
		}
		out = append(out, e...)
		return true
	}
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
		if !add(&pr) {
			return 0, 0, out
		}
	}
	for _, pr := range procList(want, seen) {
		if !add(&pr) {
			break
		}
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
