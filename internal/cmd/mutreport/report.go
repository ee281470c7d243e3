package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// result is the part of a go-gremlins JSON report used here.
type result struct {
	Files []struct {
		Name      string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
	Elapsed float64 `json:"elapsed_time"`
}

// run is one package's results.
type run struct {
	name, pkg, files string
	seconds          string
	coefficient      string // gremlins' --timeout-coefficient; "" in older .meta files
	res              result
}

// counts are the mutants of a run by status.
type counts struct{ killed, lived, notCovered, timedOut, notViable int }

func (r run) counts() counts {
	var c counts
	for _, f := range r.res.Files {
		for _, m := range f.Mutations {
			switch m.Status {
			case "KILLED":
				c.killed++
			case "LIVED":
				c.lived++
			case "NOT COVERED":
				c.notCovered++
			case "TIMED OUT":
				c.timedOut++
			case "NOT VIABLE":
				c.notViable++
			}
		}
	}
	return c
}

// load reads every <name>.meta and its <name>.json in dir.
func load(dir string) ([]run, error) {
	metas, err := filepath.Glob(filepath.Join(dir, "*.meta"))
	if err != nil {
		return nil, err
	}
	if len(metas) == 0 {
		return nil, fmt.Errorf("no results in %s: run scripts/mutate.sh", dir)
	}
	var runs []run
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(b))
		if len(f) != 4 && len(f) != 5 {
			return nil, fmt.Errorf("%s: want `name pkg files seconds [coefficient]`", m)
		}
		r := run{name: f[0], pkg: f[1], files: f[2], seconds: f[3]}
		if len(f) == 5 {
			r.coefficient = f[4]
		}
		j, err := os.ReadFile(strings.TrimSuffix(m, ".meta") + ".json")
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(j, &r.res); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// loadReasons reads `name file:line:col TYPE reason...` lines; # starts
// a comment.
func loadReasons(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	reasons := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.SplitN(line, " ", 4)
		if len(fs) != 4 {
			return nil, fmt.Errorf("%s: %q: want `name file:line:col TYPE reason`", path, line)
		}
		reasons[fs[0]+" "+fs[1]+" "+fs[2]] = strings.TrimSpace(fs[3])
	}
	return reasons, sc.Err()
}

// entries are scripts/mutate.sh's packages, in its order.
var entries = []string{"datamap", "hgfsproto", "infoproto", "kmsg", "rpc", "hgfs", "backdoor", "journal", "power", "timesync", "toolsconf"}

// write prints the report and returns how many survivors have no reason.
func write(w io.Writer, runs []run, reasons map[string]string) int {
	order := map[string]int{}
	for i, n := range entries {
		order[n] = i + 1
	}
	sort.Slice(runs, func(i, j int) bool {
		oi, oj := order[runs[i].name], order[runs[j].name]
		if oi != oj {
			return oi != 0 && (oj == 0 || oi < oj)
		}
		return runs[i].name < runs[j].name
	})
	fmt.Fprint(w, header)
	fmt.Fprintln(w, "| package | files mutated | killed | survived | not covered | timed out | not viable | score | time | timeout coefficient |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	have := map[string]bool{}
	for _, r := range runs {
		have[r.name] = true
	}
	defer func() {
		var missing []string
		for _, n := range entries {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			fmt.Fprintf(w, "\nNot run yet (no results): %s.\n", strings.Join(missing, ", "))
		}
	}()
	for _, r := range runs {
		c := r.counts()
		secs := r.seconds
		if r.res.Elapsed > 0 {
			secs = fmt.Sprintf("%.0f", r.res.Elapsed)
		}
		coeff := r.coefficient
		if coeff == "" {
			coeff = "not recorded"
		}
		fmt.Fprintf(w, "| %s (`%s`) | `%s` | %d | %d | %d | %d | %d | %s | %s s | %s |\n", r.name, r.pkg, r.files,
			c.killed, c.lived, c.notCovered, c.timedOut, c.notViable, score(c), secs, coeff)
	}
	fmt.Fprintln(w, "\nScore: killed and timed out over killed, timed out and survived. A mutant times out when the")
	fmt.Fprintln(w, "package's tests run longer than the coefficient times their unmutated time: usually a loop the")
	fmt.Fprintln(w, "mutant made endless, on a loaded machine possibly a slow run; time is gremlins' own, lock waits excluded.")
	unexplained := 0
	fmt.Fprintln(w, "\n## Survivors\n\n| package | where | mutation | why it survives |\n|---|---|---|---|")
	for _, r := range runs {
		for _, f := range r.res.Files {
			for _, m := range f.Mutations {
				if m.Status != "LIVED" {
					continue
				}
				where := fmt.Sprintf("%s:%d:%d", f.Name, m.Line, m.Column)
				why, ok := reasons[r.name+" "+where+" "+m.Type]
				if !ok {
					why = "UNEXPLAINED"
					unexplained++
				}
				fmt.Fprintf(w, "| %s | `%s` | %s | %s |\n", r.name, where, m.Type, why)
			}
		}
	}
	fmt.Fprintf(w, "\nUnexplained survivors: %d.\n", unexplained)
	return unexplained
}

func score(c counts) string {
	k := c.killed + c.timedOut
	if k+c.lived == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(k)/float64(k+c.lived))
}

const header = `# Mutation testing

` + "`make mutate`" + ` (scripts/mutate.sh) runs go-gremlins over the packages where a
silent bug costs users most, one package at a time, and writes this file
(internal/cmd/mutreport). A mutant is a small change of the code (a
comparison flipped, a boundary moved, an arithmetic operator changed);
the package's own tests must fail for it ("killed"). "Survived" means
they still pass: a missing test, or a change that cannot alter behaviour
("equivalent"), each explained below from docs/mutation-equivalent.txt.
"Not covered" mutants sit on lines no test of the package runs. Not in CI
(too slow for 2 cores); run it when these packages change:
` + "`make mutate`, or `make mutate MUTATE=\"datamap kmsg\"`" + ` for some.

`
