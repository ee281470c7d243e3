// Command vmware-rpctool sends one GuestRPC (RPCI) command to the VMX, as
// open-vm-tools' vmware-rpctool does:
//
//	vmware-rpctool [--rpc MODE] 'info-get guestinfo.foo'
//
// On a "1 " reply it prints the payload, if any, to stdout and exits 0; on
// a "0 " reply it prints the host's reason to stderr and exits 1; when the
// VMX cannot be reached it says why on stderr and exits 2. Several
// arguments are joined with spaces.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cli := cmdutil.NewCLI("vmware-rpctool", "usage: vmware-rpctool [--rpc MODE] [--timeout D] 'COMMAND'", stdout, stderr)
	rpcMode := cmdutil.RPCFlag(cli.Flags)
	timeout := cli.Flags.Duration("timeout", 30*time.Second, "give up after this long")
	debug := cli.Flags.Bool("debug", false, "log transport decisions to stderr")
	if code, exit := cli.Parse(args); exit {
		return code
	}
	if cli.Flags.NArg() == 0 {
		return cli.UsageError("want a COMMAND")
	}
	level := slog.LevelWarn
	if *debug {
		level = slog.LevelDebug
	}
	logger := cmdutil.Logger(stderr, level)
	tr, err := cmdutil.Transport(*rpcMode, logger)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return cmdutil.OneShot(ctx, cli.Name, tr.DialRPCIOneShot, []byte(strings.Join(cli.Flags.Args(), " ")), logger, stdout, stderr)
}
