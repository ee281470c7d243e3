// Command mutreport writes docs/mutation.md from the results of
// scripts/mutate.sh (one go-gremlins JSON report per package, with a
// .meta line each): per package the mutants killed, survived, not
// covered, timed out and not viable, then every survivor with the reason
// it is equivalent (from the -explain file) or marked unexplained.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	dir := flag.String("dir", ".cache/mutate", "directory of <name>.json and <name>.meta results")
	explain := flag.String("explain", "docs/mutation-equivalent.txt", "reasons for survivors: `name file:line:col TYPE reason` lines")
	flag.Parse()
	runs, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutreport:", err)
		os.Exit(1)
	}
	reasons, err := loadReasons(*explain)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutreport:", err)
		os.Exit(1)
	}
	if unexplained := write(os.Stdout, runs, reasons); unexplained > 0 {
		fmt.Fprintf(os.Stderr, "mutreport: %d survivors unexplained\n", unexplained)
	}
}
