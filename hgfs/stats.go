package hgfs

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/govmtools/govmtools/hgfs/hgfsproto"
)

// OpStat is the count and latency of one op.
type OpStat struct {
	Op     string
	Count  uint64
	Errors uint64
	Total  time.Duration
	Max    time.Duration
}

// Mean is the mean latency.
func (s OpStat) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Total / time.Duration(s.Count)
}

type stats struct {
	mu  sync.Mutex
	ops map[hgfsproto.Op]*OpStat
}

func (s *stats) record(op hgfsproto.Op, d time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = map[hgfsproto.Op]*OpStat{}
	}
	st := s.ops[op]
	if st == nil {
		st = &OpStat{Op: op.String()}
		s.ops[op] = st
	}
	st.Count++
	if failed {
		st.Errors++
	}
	st.Total += d
	st.Max = max(st.Max, d)
}

func (s *stats) snapshot() []OpStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]OpStat, 0, len(s.ops))
	for _, st := range s.ops {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Op < out[j].Op })
	return out
}

// WriteStats prints a table of per-op round trips and latencies.
func WriteStats(w io.Writer, ops []OpStat) error {
	var total uint64
	if _, err := fmt.Fprintf(w, "%-22s %10s %8s %12s %12s\n", "op", "count", "errors", "mean", "max"); err != nil {
		return err
	}
	for _, s := range ops {
		total += s.Count
		fmt.Fprintf(w, "%-22s %10d %8d %12v %12v\n", s.Op, s.Count, s.Errors, s.Mean().Round(time.Microsecond), s.Max.Round(time.Microsecond))
	}
	_, err := fmt.Fprintf(w, "%-22s %10d\n", "total round trips", total)
	return err
}
