// Command vmware-rpctool sends one GuestRPC (RPCI) command to the VMX, as
// open-vm-tools' vmware-rpctool does:
//
//	vmware-rpctool [--rpc MODE] 'info-get guestinfo.foo'
//
// On a "1 " reply it prints the payload and a newline (a lone newline for
// an empty one, as open-vm-tools does) to stdout and exits 0; on
// a "0 " reply it prints the host's reason to stderr and exits 1; when the
// VMX cannot be reached it says why on stderr and exits 2. Several
// arguments are joined with spaces.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/rpc"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vmware-rpctool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vmware-rpctool [--rpc MODE] 'COMMAND'")
		fs.PrintDefaults()
	}
	rpcMode := cmdutil.RPCFlag(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	debug := fs.Bool("debug", false, "log transport decisions to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	level := slog.LevelWarn
	if *debug {
		level = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, level)
	tr, err := cmdutil.Transport(*rpcMode, logger)
	if err != nil {
		fmt.Fprintf(stderr, "vmware-rpctool: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	client := &rpc.Client{Dial: tr.DialRPCIOneShot, Logger: logger}
	defer client.Close()
	reply, err := client.Call(ctx, []byte(strings.Join(fs.Args(), " ")))
	var re *rpc.ReplyError
	switch {
	case err == nil:
		// As open-vm-tools' printf("%s\n"): the reply up to its first
		// NUL, and a newline even after an empty reply.
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			reply = reply[:i]
		}
		stdout.Write(append(reply, '\n'))
		return 0
	case errors.As(err, &re):
		fmt.Fprintln(stderr, re.Text)
		return 1
	case errors.Is(err, rpc.ErrTooLarge):
		fmt.Fprintf(stderr, "vmware-rpctool: %v\n", err)
		return 1
	default:
		fmt.Fprintf(stderr, "vmware-rpctool: cannot reach the VMX: %v\n", err)
		return 2
	}
}
