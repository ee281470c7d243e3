package daemon

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/govmtools/govmtools/guestinfo"
	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vix"
)

// HelperName is the guest-operations helper's file name; vmtoolsd runs
// the one installed beside its own executable.
const HelperName = "vmware-vix-helper"

// newVIX builds the guest-operations service (vmtoolsd/vix), its
// [guestoperations] switches read from the current tools.conf.
func newVIX(conf *toolsconf.Watcher, logger *slog.Logger) *vix.Service {
	svc := &vix.Service{Logger: logger, ToolsVersion: vmtoolsd.DefaultVersion().String(), Conf: conf.Current,
		OS: func() (string, string) {
			info, err := (&guestinfo.System{}).OS(nil)
			if err != nil {
				return "", ""
			}
			return info.ShortName, info.FullName
		}}
	if exe, err := os.Executable(); err == nil {
		svc.Helper = filepath.Join(filepath.Dir(exe), HelperName)
	}
	if _, err := os.Stat(svc.Helper); err != nil {
		logger.Warn("guest operations will fail: no helper", "helper", svc.Helper, "err", err)
	}
	return svc
}
