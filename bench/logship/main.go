// Command logship is a `make bench` helper: it ships the lines of a file
// into vmware.log with the "log" RPCI and prints
//
//	<lines> <seconds>
//
// Modes:
//
//	persistent  one RPCI channel for every line, each reply collected (as
//	            vmware-kmsgdump does)
//	oneshot     a channel opened, the line sent, the reply collected and
//	            the channel closed, per line (open-vm-tools' one-shot RPCI)
//	photon      per line, a backdoor channel opened with the cookie flag,
//	            the line sent and the channel closed with no reply
//	            collected: Photon's kernel dumper's sequence (OPEN,
//	            SENDSIZE, REP OUTSB, CLOSE); backdoor only
//
// It is a separate program so that the same measurement runs over
// vmxsim's unix sockets and, under `vmxsim run`, through the backdoor
// trap. It is not installed.
//
//	logship [--rpc MODE] --mode persistent|oneshot|photon FILE
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
	"github.com/govmtools/govmtools/rpc/backdoor"
)

func main() {
	rpcMode := cmdutil.RPCFlag(flag.CommandLine)
	mode := flag.String("mode", "persistent", "persistent, oneshot or photon")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: logship [--rpc MODE] --mode persistent|oneshot|photon FILE")
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
	case "photon":
		for _, l := range lines {
			ch, err := tr.DialRPCIOneShot(ctx)
			if err != nil {
				return err
			}
			if _, ok := ch.(*backdoor.Channel); !ok {
				ch.Close()
				return fmt.Errorf("photon mode needs the backdoor, got %T", ch)
			}
			if err := ch.Send(ctx, append([]byte("log "), l...)); err != nil {
				ch.Close()
				return err
			}
			if err := ch.Close(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Printf("%d %.6f\n", len(lines), time.Since(start).Seconds())
	return nil
}
