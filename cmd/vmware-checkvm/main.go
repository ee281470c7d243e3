// Command vmware-checkvm tells whether this is a VMware VM whose VMX
// answers, as open-vm-tools' vmware-checkvm does: it prints
// "VMware software version 6 (good)" and exits 0, or says why not and
// exits 1.
//
// Over the backdoor the version is what GETVERSION returns. Over vsock and
// unix:DIR (vmxsim) there is no GETVERSION; one RPCI round trip proves the
// VMX answers, and GuestRPC sockets exist only on VMXs that speak backdoor
// version 6.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/rpc"
)

// versionMagic is the backdoor protocol version a VMX must report.
const versionMagic = 6

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cli := cmdutil.NewCLI("vmware-checkvm", "usage: vmware-checkvm [--rpc MODE] [--timeout D]", stdout, stderr)
	rpcMode := cmdutil.RPCFlag(cli.Flags)
	timeout := cli.Flags.Duration("timeout", 5*time.Second, "give up after this long")
	if code, exit := cli.Parse(args); exit {
		return code
	}
	if cli.Flags.NArg() > 0 {
		return cli.UsageError("unexpected arguments %q", cli.Flags.Args())
	}
	logger := cmdutil.Logger(stderr, slog.LevelWarn)
	tr, err := cmdutil.Transport(*rpcMode, logger)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &rpc.Client{Dial: tr.DialRPCIOneShot, Logger: logger, NoRetry: true}
	defer client.Close()
	// Any well-formed reply, "1 " or "0 ", proves a VMX is answering.
	_, err = client.Call(ctx, []byte("info-get guestinfo.govmtools.checkvm"))
	var re *rpc.ReplyError
	if err != nil && !errors.As(err, &re) {
		fmt.Fprintf(stderr, "vmware-checkvm: not running on a VMware VM that answers: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "VMware software version %d (good)\n", versionMagic)
	return 0
}
