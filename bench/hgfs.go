package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/govmtools/govmtools/internal/hgfswork"
)

// hgfsTarget is one way to reach a share's files: through a mount made
// by some client (a Mounter), or the share's directory itself (native).
type hgfsTarget struct {
	name    string
	mounter *hgfswork.Mounter // nil: the host directory directly
}

// benchHGFS runs the shared-folder workloads through each client and on
// the share's directory directly (the native limit), counting HGFS round
// trips on the simulator. Debian's vmhgfs-fuse under the trap becomes
// another target once vmxsim run exists.
func benchHGFS(ctx context.Context, e *env) ([]row, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root and /dev/fuse to mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, errors.New("needs /dev/fuse")
	}
	ours := hgfswork.Ours(e.bin, "")
	targets := []hgfsTarget{{name: "govmtools vmhgfs-fuse, unix:DIR", mounter: &ours}, {name: "native"}}
	results := map[string]map[string]result{}
	var order []string
	for _, tg := range targets {
		res, names, err := runHGFSTarget(ctx, e, tg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.name, err)
		}
		results[tg.name] = res
		order = names
	}
	var rows []row
	for _, w := range order {
		o, n := results[targets[0].name][w], results["native"][w]
		rows = append(rows, row{
			What:      "HGFS: " + w,
			Ours:      fmt.Sprintf("%s, %d round trips", o.show(), o.trips),
			Reference: "native " + n.show(),
			Notes:     fmt.Sprintf("%s, share on tmpfs; %.1fx native", targets[0].name, o.ratio(n)),
		})
	}
	return rows, nil
}

type result struct {
	d     time.Duration
	bytes int64
	trips uint64
}

func (r result) show() string {
	if r.bytes > 0 {
		return fmt.Sprintf("%.0f MB/s", float64(r.bytes)/r.d.Seconds()/1e6)
	}
	return fmt.Sprintf("%.3f s", r.d.Seconds())
}

func (r result) ratio(n result) float64 {
	if n.d == 0 {
		return 0
	}
	return r.d.Seconds() / n.d.Seconds()
}

const (
	benchFiles   = 10000
	benchSeqSize = 256 << 20
	benchBlock   = 1 << 20
	benchTree    = 2000
)

// shareParent is where shares live: tmpfs when there is one, so that the
// rows measure the protocol and not a (shared, noisy) disk.
func shareParent(e *env) string {
	if d, err := os.MkdirTemp("/dev/shm", "govmtools-bench-"); err == nil {
		return d
	}
	return e.scratch
}

func runHGFSTarget(ctx context.Context, e *env, tg hgfsTarget) (map[string]result, []string, error) {
	parent := shareParent(e)
	if parent != e.scratch {
		defer os.RemoveAll(parent)
	}
	share, err := os.MkdirTemp(parent, "share-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(share)
	s, err := e.startSim(ctx, "--share", "s="+share)
	if err != nil {
		return nil, nil, err
	}
	defer s.stop()
	trips := func() uint64 {
		out, err := exec.CommandContext(ctx, filepath.Join(e.bin, "vmxsim"), "ctl", "--dir", s.dir, "state").Output()
		if err != nil {
			return 0
		}
		var st struct {
			HGFS struct {
				RoundTrips uint64 `json:"roundTrips"`
			} `json:"hgfs"`
		}
		json.Unmarshal(out, &st)
		return st.HGFS.RoundTrips
	}
	mnt := ""
	var mountOpts []string
	mount := func() error {
		if tg.mounter == nil {
			mnt = share
			return nil
		}
		if mnt == "" {
			if mnt, err = os.MkdirTemp(e.scratch, "mnt-"); err != nil {
				return err
			}
		}
		return tg.mounter.Mount(ctx, s.dir, ".host:/s", mnt, mountOpts...)
	}
	unmount := func() error {
		if tg.mounter == nil {
			return nil
		}
		return hgfswork.Unmount(mnt)
	}
	if err := mount(); err != nil {
		return nil, nil, err
	}
	defer unmount()

	src := filepath.Join(parent, "tree")
	tarball := filepath.Join(parent, "tree.tar")
	{
		if err := hgfswork.MakeSourceTree(src, benchTree); err != nil {
			return nil, nil, err
		}
		if err := hgfswork.Tar(tarball, src); err != nil {
			return nil, nil, err
		}
	}

	res := map[string]result{}
	var names []string
	measure := func(name string, bytes int64, fn func() error) error {
		before := trips()
		start := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res[name] = result{d: time.Since(start), bytes: bytes, trips: trips() - before}
		names = append(names, name)
		return nil
	}
	files := filepath.Join(mnt, "files")
	steps := []struct {
		name  string
		bytes int64
		fn    func() error
	}{
		{fmt.Sprintf("create %d files", benchFiles), 0, func() error {
			if err := os.Mkdir(files, 0o755); err != nil {
				return err
			}
			return hgfswork.CreateFiles(files, benchFiles)
		}},
		{fmt.Sprintf("`ls -l` of %d entries (fresh mount)", benchFiles), 0, func() error {
			if err := unmount(); err != nil {
				return err
			}
			if err := mount(); err != nil {
				return err
			}
			n, err := hgfswork.ListLong(files)
			if err == nil && n != benchFiles {
				err = fmt.Errorf("listed %d entries", n)
			}
			return err
		}},
		{fmt.Sprintf("`stat` of %d paths, first pass (fresh mount, 60 s timeouts)", benchFiles), 0, func() error {
			if err := unmount(); err != nil {
				return err
			}
			mountOpts = []string{"attr_timeout=60", "entry_timeout=60"}
			defer func() { mountOpts = nil }()
			if err := mount(); err != nil {
				return err
			}
			return hgfswork.StatFiles(files, benchFiles)
		}},
		{fmt.Sprintf("`stat` of %d paths, second pass (cached)", benchFiles), 0, func() error { return hgfswork.StatFiles(files, benchFiles) }},
		{"256 MiB sequential write (1 MiB writes)", benchSeqSize, func() error {
			return hgfswork.WriteSeq(filepath.Join(mnt, "seq"), benchSeqSize, benchBlock)
		}},
		{"256 MiB sequential read (fresh mount)", benchSeqSize, func() error {
			if err := unmount(); err != nil {
				return err
			}
			if err := mount(); err != nil {
				return err
			}
			n, err := hgfswork.ReadSeq(filepath.Join(mnt, "seq"), benchBlock)
			if err == nil && n != benchSeqSize {
				err = fmt.Errorf("read %d bytes", n)
			}
			return err
		}},
		{fmt.Sprintf("tar extract of a %d-file source tree", benchTree), 0, func() error {
			d := filepath.Join(mnt, "tree")
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			return hgfswork.ExtractTar(tarball, d)
		}},
	}
	for _, st := range steps {
		if err := measure(st.name, st.bytes, st.fn); err != nil {
			return nil, nil, err
		}
	}
	return res, names, nil
}
