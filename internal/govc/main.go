// Command govc is a test and demo helper, never shipped: govmomi's govc
// built from its cli packages (govc's own main is a nested module), with
// only the commands govmtools' tests and demo use: about, ls, vm.info,
// vm.power, object.collect, snapshot.*.
package main

import (
	"os"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/about"
	_ "github.com/vmware/govmomi/cli/ls"
	_ "github.com/vmware/govmomi/cli/object"
	_ "github.com/vmware/govmomi/cli/vm"
	_ "github.com/vmware/govmomi/cli/vm/guest"
	_ "github.com/vmware/govmomi/cli/vm/snapshot"
)

func main() {
	os.Exit(cli.Run(os.Args[1:]))
}
