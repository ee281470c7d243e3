package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// hgfsMeta (-hgfs-meta) runs only the HGFS metadata workloads (create,
// a fresh `ls -l`, a first `stat`, tar) under the trap (ours and
// Debian's) and over unix (ours), and prints their guest CPU per op, round
// trips and HGFS requests by op: a quicker loop for work on the daemon's
// own cost than the whole HGFS part. It is not part of `make bench`.
var hgfsMeta bool

// metaStep reports whether the workload named name is one -hgfs-meta
// runs.
func metaStep(name string) bool {
	for _, p := range []string{"create ", "(fresh mount)", "first pass", "tar extract"} {
		if strings.Contains(name, p) && !strings.Contains(name, "sequential") {
			return true
		}
	}
	return false
}

// benchHGFSTrapMeta is benchHGFSTrap for -hgfs-meta.
func benchHGFSTrapMeta(ctx context.Context, e *env, o, d hgfsTarget, tarball string, simDir string) ([]row, error) {
	o.requests = requestCounter(ctx, e, simDir)
	d.requests = o.requests
	ores, dres, names, err := runHGFSPair(ctx, o, d, tarball)
	if err != nil {
		return nil, err
	}
	trapCPU, err := e.trapCPUPerCall(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracee CPU per trapped call: %w", err)
	}
	rows := []row{{"HGFS under the trap: CPU per trapped backdoor call", micros(trapCPU), "—", "bdprobe trapcpu, best of 3"}}
	return append(rows, metaRows("under the trap", ores, dres, names, trapCPU)...), nil
}

// metaRows are the -hgfs-meta rows of one place (ours, and Debian's
// beside it when dres is not nil).
func metaRows(where string, ores, dres map[string]result, names []string, trapCPU time.Duration) []row {
	var rows []row
	for _, w := range names {
		or := ores[w]
		ref, notes := "—", ""
		if dres != nil {
			dr := dres[w]
			ref = fmt.Sprintf("%s; %d round trips: %s", dr.cpuCell(trapCPU), dr.trips, opCounts(dr.reqs))
			notes = "ours/Debian's " + cpuRatio(or, dr, trapCPU)
		}
		rows = append(rows, row{
			What:      fmt.Sprintf("HGFS guest CPU per op %s: %s", where, w),
			Ours:      fmt.Sprintf("%s; %s; %d round trips: %s", or.cpuCell(trapCPU), or.show(), or.trips, opCounts(or.reqs)),
			Reference: ref,
			Notes:     notes,
		})
	}
	return rows
}

// opCounts shows HGFS requests by op, the most frequent first.
func opCounts(reqs map[string]uint64) string {
	ops := slices.Collect(maps.Keys(reqs))
	slices.SortFunc(ops, func(a, b string) int { return int(reqs[b]) - int(reqs[a]) })
	var parts []string
	for _, op := range ops {
		if reqs[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, reqs[op]))
		}
	}
	return strings.Join(parts, ", ")
}

// requestCounter returns a function reading the simulator's HGFS
// requests by op (hgfs.requests of `vmxsim ctl state`).
func requestCounter(ctx context.Context, e *env, simDir string) func() (map[string]uint64, error) {
	return func() (map[string]uint64, error) {
		out, err := ctlState(ctx, e, simDir)
		if err != nil {
			return nil, err
		}
		var st struct {
			HGFS *struct {
				Requests map[string]uint64 `json:"requests"`
			} `json:"hgfs"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return nil, fmt.Errorf("vmxsim ctl state: %w", err)
		}
		if st.HGFS == nil {
			return nil, errors.New("vmxsim ctl state: no hgfs")
		}
		if st.HGFS.Requests == nil {
			st.HGFS.Requests = map[string]uint64{}
		}
		return st.HGFS.Requests, nil
	}
}
