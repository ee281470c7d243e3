// Command vmware-vix-helper runs one authenticated guest operation for
// vmtoolsd: it reads the VIX request on standard input, checks the
// credential with PAM (service vmtoolsd), becomes the user and performs
// the operation (vmtoolsd/vix/helper). It links PAM, so it is the one
// govmtools binary built with cgo; vmtoolsd starts it, never a person.
//
//	vmware-vix-helper < REQUEST
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/govmtools/govmtools/internal/cmdutil"
	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/pamauth"
)

func main() {
	cli := cmdutil.NewCLI("vmware-vix-helper", "usage: vmware-vix-helper < VIX-REQUEST   (started by vmtoolsd)", os.Stdout, os.Stderr)
	if code, exit := cli.Parse(os.Args[1:]); exit {
		os.Exit(code)
	}
	if cli.Flags.NArg() > 0 {
		os.Exit(cli.UsageError("unexpected arguments %q", cli.Flags.Args()))
	}
	os.Exit(helper.Main(os.Stdin, os.Stdout, os.Stderr, authenticate))
}

// authenticate is PAM, with its infrastructure failures marked for the
// helper.
func authenticate(user string, password []byte) error {
	err := pamauth.Authenticate(user, password)
	if errors.Is(err, pamauth.ErrUnavailable) {
		return fmt.Errorf("%w: %v", helper.ErrUnavailable, err)
	}
	return err
}
