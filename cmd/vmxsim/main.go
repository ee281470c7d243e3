// Command vmxsim is the simulated VMX: it serves the host side of GuestRPC
// on unix sockets so govmtools (and open-vm-tools) can run on a machine
// that is not a VMware VM, and inspects what the host sees.
//
//	vmxsim serve --dir DIR [--share NAME=DIR[,ro]]... [--ping-interval D] [--tools-timeout D] [--trace FILE] [--vsphere HOST:PORT [--vm-nic MAC]...]
//	vmxsim run [--dir DIR] [--lb] [--keep-dead-channels] [--clock-offset D] [serve's flags] -- CMD ARGS...
//	vmxsim ctl --dir DIR state|log|tclo CMD|power OP|vsphere|backdoor OP
//	vmxsim ctl --dir DIR share enable|disable NAME
//	vmxsim ctl --dir DIR hgfs enable|disable|restart|fault SPEC
//
// run is the ptrace backdoor trap (linux/amd64): CMD runs unchanged, its
// backdoor instructions are answered by the same simulated VMX that serve
// runs, which also serves DIR's sockets meanwhile. The simulator itself is
// package vmxsim/sim; this main parses flags and prints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/govmtools/govmtools/internal/version"
	"github.com/govmtools/govmtools/vmxsim/trap"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == trap.HelperArg {
		os.Exit(trap.HelperMain(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// commands are vmxsim's subcommands; each returns the exit code of a
// command it ran (run) or an error.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error){
	"serve": serve,
	"run":   runCmd,
	"ctl":   ctl,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageExit(stderr, usageError{msg: "no command given"})
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "vmxsim (govmtools) "+version.String())
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return usageExit(stderr, usageError{msg: fmt.Sprintf("unknown command %q", args[0])})
	}
	code, err := cmd(ctx, args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return code
	case errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		return usageExit(stderr, ue)
	default:
		fmt.Fprintf(stderr, "vmxsim: %v\n", err)
		return 1
	}
}

// usageError is bad usage: one line, then a hint naming --help.
type usageError struct {
	cmd string // the subcommand whose --help to name, or ""
	msg string
}

func (e usageError) Error() string { return e.msg }

func usageExit(stderr io.Writer, e usageError) int {
	name := "vmxsim"
	if e.cmd != "" {
		name += " " + e.cmd
	}
	fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", name, e.msg, name)
	return 2
}

// errHelpShown ends a subcommand whose --help has been printed.
var errHelpShown = errors.New("help shown")

// parseFlags parses a subcommand's flags without the flag package's own
// printing: --help prints synopsis and the flags to stdout once; a bad
// flag becomes a usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: %s\n\nflags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return errHelpShown
	case err != nil:
		return usageError{cmd: fs.Name(), msg: err.Error()}
	}
	return nil
}
