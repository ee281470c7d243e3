// Package cmdutil is glue shared by the govmtools mains: the command-line
// convention every binary follows (CLI: --help, --version, usage errors
// and their exit codes), the --rpc flag, the transport it selects (with
// GOVMTOOLS_RPC and GOVMTOOLS_SIMULATED from the environment), log levels
// by name, the stderr logger, and the one-shot RPCI of vmware-rpctool and
// `vmtoolsd --cmd`. Only mains import it.
package cmdutil

import (
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/govmtools/govmtools/rpc/transport"
)

// RPCFlag registers --rpc on fs.
func RPCFlag(fs *flag.FlagSet) *string {
	return fs.String("rpc", "", "how to reach the VMX: auto, vsock, backdoor or unix:DIR (default $"+transport.EnvRPC+", then auto)")
}

// Transport builds the transport selected by the --rpc value and the
// environment.
func Transport(rpcFlag string, logger *slog.Logger) (*transport.Transport, error) {
	mode, err := transport.Select(rpcFlag, os.Getenv(transport.EnvRPC))
	if err != nil {
		return nil, err
	}
	return transport.New(transport.Config{
		Mode:      mode,
		Simulated: Simulated(),
		Logger:    logger,
	}), nil
}

// Simulated reports whether the process runs under vmxsim
// (GOVMTOOLS_SIMULATED=1).
func Simulated() bool { return os.Getenv(transport.EnvSimulated) == "1" }

// Logger returns a text logger on w at level, for daemons' stderr (which
// systemd sends to the journal).
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
