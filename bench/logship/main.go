// Command logship is a `make bench` helper: it ships the lines of a file
// into vmware.log with the "log" RPCI, either over one persistent RPCI
// channel (as vmware-kmsgdump does) or opening, sending on and closing a
// channel for every line (as Photon's kernel dumper does), and prints
//
//	<lines> <seconds>
//
// It is a separate program so that the same measurement runs over
// vmxsim's unix sockets and, under `vmxsim run`, through the backdoor
// trap. It is not installed.
//
//	logship [--rpc MODE] --mode persistent|oneshot FILE
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/kmsgdump"
	"github.com/govmtools/govmtools/rpc"
)

func main() {
	rpcMode := cmdutil.RPCFlag(flag.CommandLine)
	mode := flag.String("mode", "persistent", "persistent or oneshot")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: logship [--rpc MODE] --mode persistent|oneshot FILE")
		os.Exit(2)
	}
	if err := run(*rpcMode, *mode, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "logship:", err)
		os.Exit(1)
	}
}

func run(rpcMode, mode, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = kmsgdump.AppendLogLines(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	tr, err := cmdutil.Transport(rpcMode, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	switch mode {
	case "persistent":
		c := &rpc.Client{Dial: tr.DialRPCI, NoRetry: true}
		defer c.Close()
		for _, l := range lines {
			if _, err := c.Call(ctx, append([]byte("log "), l...)); err != nil {
				return err
			}
		}
	case "oneshot":
		for _, l := range lines {
			ch, err := tr.DialRPCIOneShot(ctx)
			if err != nil {
				return err
			}
			if err := ch.Send(ctx, append([]byte("log "), l...)); err != nil {
				ch.Close()
				return err
			}
			if _, err := ch.Receive(ctx); err != nil {
				ch.Close()
				return err
			}
			ch.Close()
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Printf("%d %.6f\n", len(lines), time.Since(start).Seconds())
	return nil
}
