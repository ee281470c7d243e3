package power

import (
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

var _ vmtoolsd.Plugin = (*Ops)(nil)

// Group is the tools.conf group of the power scripts.
const Group = "powerops"

// Schema lists the tools.conf keys this package honours: the [powerops]
// script paths.
func Schema() toolsconf.Schema {
	return toolsconf.Schema{Group: {
		"poweroff-script": toolsconf.Path,
		"poweron-script":  toolsconf.Path,
		"resume-script":   toolsconf.Path,
		"suspend-script":  toolsconf.Path,
	}}
}

// ConfScripts reads the scripts from the current tools.conf.
func ConfScripts(current func() *toolsconf.File) Scripts {
	return func(key string) (string, bool) { return current().Lookup(Group, key) }
}

// Plug registers power operations with the tools service: the power
// commands, their capabilities, toolScripts.* and the script runner.
func (o *Ops) Plug(r *vmtoolsd.Registry) {
	o.Register(r.Mux())
	r.Capabilities(o.Capabilities)
	r.OnOption(o.SetOption)
	r.Go("power", o.Run)
}
