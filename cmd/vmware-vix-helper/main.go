// Command vmware-vix-helper runs one authenticated guest operation for
// vmtoolsd: it reads the VIX request on standard input, checks the
// credential with PAM (service vmtoolsd), becomes the user and performs
// the operation (vmtoolsd/vix/helper). It links PAM, so it is the one
// govmtools binary built with cgo; vmtoolsd starts it, never a person.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/pamauth"
)

func main() {
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
