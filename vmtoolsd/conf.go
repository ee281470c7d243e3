package vmtoolsd

import "github.com/govmtools/govmtools/vmtoolsd/toolsconf"

// Group is the tools.conf group of the service's own settings.
const Group = "vmtools"

// Schema lists the tools.conf keys of [vmtools]. Only hide-tools-version
// has an effect (Config.HideVersion); disable-tools-version and
// use-legacy-version are accepted so that a stock tools.conf draws no
// warning.
func Schema() toolsconf.Schema {
	return toolsconf.Schema{Group: {
		"hide-tools-version":    toolsconf.Bool,
		"disable-tools-version": toolsconf.Bool,
		"use-legacy-version":    toolsconf.Bool,
	}}
}
