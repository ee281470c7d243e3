// Command mkpkg builds govmtools' .deb and .rpm packages into dist/ (see
// package packaging); `make package` runs it:
//
//	go run ./packaging/cmd/mkpkg --version VERSION [--out dist] [--arch amd64,arm64] [--format deb,rpm]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/govmtools/govmtools/packaging"
)

func main() {
	version := flag.String("version", "", "package version, as git describe gives it (required)")
	out := flag.String("out", "dist", "output directory")
	arch := flag.String("arch", "amd64,arm64", "comma-separated Go architectures")
	format := flag.String("format", "deb,rpm", "comma-separated package formats")
	maintainer := flag.String("maintainer", "govmtools developers <govmtools@users.noreply.github.com>", "Maintainer / Packager")
	root := flag.String("root", ".", "the module root")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *version == "" {
		fmt.Fprintln(os.Stderr, "mkpkg: --version is required")
		os.Exit(2)
	}
	paths, err := packaging.Build(context.Background(), packaging.Options{
		Root: *root, Out: *out, Version: *version,
		Arches: strings.Split(*arch, ","), Formats: strings.Split(*format, ","),
		Maintainer: *maintainer, MTime: mtime(*root), Logger: logger,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkpkg: %v\n", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
}

// mtime is SOURCE_DATE_EPOCH, else the last commit's time, else now, so
// that two builds of one commit give the same files.
func mtime(root string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0)
		}
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	if b, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return time.Unix(n, 0)
		}
	}
	return time.Now()
}
