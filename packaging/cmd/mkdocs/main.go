// Command mkdocs writes the man pages, bash completions and units of
// already built govmtools binaries (what `make package` generates), for
// builds that package with rpmbuild (packaging/photon/govmtools.spec):
//
//	go run ./packaging/cmd/mkdocs --bin out --out out/docs --version VERSION
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/govmtools/govmtools/packaging"
)

func main() {
	bin := flag.String("bin", "out", "directory of the built binaries (for this machine)")
	out := flag.String("out", "out/docs", "output directory")
	version := flag.String("version", "", "version shown in the man pages (required)")
	root := flag.String("root", ".", "the module root")
	flag.Parse()
	if *version == "" {
		fmt.Fprintln(os.Stderr, "mkdocs: --version is required")
		os.Exit(2)
	}
	bins, err := packaging.UserBinaries(*root)
	if err == nil {
		err = packaging.Generate(context.Background(), packaging.Options{
			Root: *root, Version: *version, MTime: time.Now(),
			Maintainer: "govmtools developers <govmtools@users.noreply.github.com>",
		}, *out, *bin, bins)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkdocs: %v\n", err)
		os.Exit(1)
	}
}
