// Command vmware-toolbox-cmd queries and changes VMware Tools settings and
// asks the host about the VM, with the command line, messages and exit
// codes of open-vm-tools' vmware-toolbox-cmd:
//
//	vmware-toolbox-cmd [-q] config get deployPkg enable-custom-scripts
//	vmware-toolbox-cmd timesync status
//	vmware-toolbox-cmd stat hosttime
//	vmware-toolbox-cmd help
//
// It reaches the VMX as every govmtools binary does ($GOVMTOOLS_RPC: auto,
// vsock, backdoor or unix:DIR; it takes no --rpc flag, which
// open-vm-tools' option parser would refuse). tools.conf is read from
// /etc/vmware-tools, or from $GOVMTOOLS_CONF_DIR.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/internal/toolboxcmd"
	"github.com/govmtools/govmtools/internal/version"
	"github.com/govmtools/govmtools/rpc"
	"github.com/govmtools/govmtools/rpc/backdoor"
	"github.com/govmtools/govmtools/rpc/transport"
)

// rpcTimeout bounds one RPCI round trip.
const rpcTimeout = 30 * time.Second

// host reaches the VMX through a transport.
type host struct {
	tr *transport.Transport
	lb func(*backdoor.Regs) error
}

func (h *host) LB(r *backdoor.Regs) error {
	if h.lb == nil {
		return transport.ErrNoBackdoor
	}
	return h.lb(r)
}

func (h *host) RPC(ctx context.Context, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	c := &rpc.Client{Dial: h.tr.DialRPCIOneShot, NoRetry: true}
	defer c.Close()
	return c.Call(ctx, req)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	logger := slog.New(slog.DiscardHandler)
	env := &toolboxcmd.Env{
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		ConfDir: os.Getenv("GOVMTOOLS_CONF_DIR"),
		NicInfo: toolboxcmd.NicInfo,
		Version: version.String(),
	}
	tr, err := cmdutil.Transport("", logger)
	if err != nil {
		env.CheckVM = func() error { return err }
	} else {
		h := &host{tr: tr}
		h.lb, _ = tr.LowBandwidth()
		env.Host, env.CheckVM = h, tr.CheckVMware
	}
	return toolboxcmd.Run(ctx, os.Args, env)
}
