// Command vmware-hgfsclient prints the names of the host's shared
// folders, one per line, as open-vm-tools' vmware-hgfsclient does. It
// exits 1 when shared folders cannot be reached (disabled on the host,
// or not a VM).
//
//	vmware-hgfsclient [--rpc MODE]
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/hgfs"
	"github.com/govmtools/govmtools/hgfs/hgfsproto"
	"github.com/govmtools/govmtools/internal/cmdutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cli := cmdutil.NewCLI("vmware-hgfsclient", "usage: vmware-hgfsclient [--rpc MODE]", stdout, stderr)
	rpcFlag := cmdutil.RPCFlag(cli.Flags)
	if code, exit := cli.Parse(args); exit {
		return code
	}
	if cli.Flags.NArg() != 0 {
		return cli.UsageError("unexpected arguments %q", cli.Flags.Args())
	}
	logger := cmdutil.Logger(stderr, slog.LevelWarn)
	tr, err := cmdutil.Transport(*rpcFlag, logger)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := hgfs.New(ctx, hgfs.Config{Transport: hgfs.NewRPCTransport(tr.DialRPCI, 1, logger), Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, "vmware-hgfsclient:", err)
		return 1
	}
	defer c.Close(context.WithoutCancel(ctx))
	shares, err := c.Shares(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "vmware-hgfsclient:", err)
		return 1
	}
	for _, s := range shares {
		fmt.Fprintln(stdout, hgfsproto.Escape(s))
	}
	return 0
}
