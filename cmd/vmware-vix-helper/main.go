// Command vmware-vix-helper runs one authenticated guest operation for
// vmtoolsd: it reads the VIX request on standard input, checks the
// credential with PAM (service vmtoolsd), becomes the user and performs
// the operation (vmtoolsd/vix/helper). It links PAM, so it is the one
// govmtools binary built with cgo; vmtoolsd starts it, never a person.
package main

import (
	"os"

	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/pamauth"
)

func main() {
	os.Exit(helper.Main(os.Stdin, os.Stdout, os.Stderr, pamauth.Authenticate))
}
