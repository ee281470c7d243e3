package timesync

import (
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

var _ vmtoolsd.Plugin = (*Syncer)(nil)

// Group is the tools.conf group of time sync.
const Group = "timeSync"

// Schema lists the tools.conf keys of [timeSync]. timeInfo.enabled
// belongs to open-vm-tools' time-info reports, which govmtools does not
// send; it is accepted so that it draws no warning.
func Schema() toolsconf.Schema {
	return toolsconf.Schema{Group: {
		"disable-all":      toolsconf.Bool,
		"disable-periodic": toolsconf.Bool,
		"step-threshold":   toolsconf.Seconds,
		"timeInfo.enabled": toolsconf.Bool,
	}}
}

// ConfSettings reads the settings from tools.conf [timeSync].
func ConfSettings(f *toolsconf.File) Settings {
	return Settings{
		DisableAll:      f.Bool(Group, "disable-all", false),
		DisablePeriodic: f.Bool(Group, "disable-periodic", false),
		StepThreshold:   f.Seconds(Group, "step-threshold", DefaultStepThreshold),
	}
}

// Plug registers time sync with the tools service: Time_Synchronize, the
// synctime options and the periodic loop.
func (s *Syncer) Plug(r *vmtoolsd.Registry) {
	s.Register(r.Mux())
	r.OnOption(s.SetOption)
	r.Go("timesync", s.Run)
}
