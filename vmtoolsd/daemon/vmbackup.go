package daemon

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vmbackup"
)

// EnvFreezeAllow lists (colon-separated) the mount points a simulated
// daemon may really freeze: loop file systems a test mounted.
const EnvFreezeAllow = "GOVMTOOLS_FREEZE_ALLOW"

// newVMBackup builds the quiesce service: [vmbackup] read at every start,
// scripts under confDir/backupScripts.d, the thaw guard a re-exec of this
// binary. Under vmxsim (simulated) freezes are only recorded, except on
// the mount points in GOVMTOOLS_FREEZE_ALLOW.
func newVMBackup(conf *toolsconf.Watcher, rpci vmbackup.Sender, confDir string, simulated bool, getenv func(string) string, logger *slog.Logger) *vmbackup.Service {
	var fr vmbackup.Freezer = vmbackup.LinuxFreezer{}
	if simulated {
		var allow []string
		if v := getenv(EnvFreezeAllow); v != "" {
			allow = filepath.SplitList(v)
		}
		fr = &vmbackup.SimFreezer{Allow: allow, Inner: vmbackup.LinuxFreezer{}, Logger: logger}
	}
	svc := &vmbackup.Service{
		RPCI: rpci,
		Settings: func() vmbackup.Settings {
			f := conf.Current()
			s := vmbackup.ReadSettings(f)
			if _, set := f.Lookup(vmbackup.Group, "manifestDir"); !set && confDir != "" {
				s.ManifestDir = confDir
			}
			return s
		},
		Freezer: fr,
		Scripts: &vmbackup.Scripts{Dir: filepath.Join(confOr(confDir), "backupScripts.d"), Logger: logger},
		Logger:  logger,
	}
	if exe, err := os.Executable(); err == nil {
		svc.Guard = vmbackup.ExecGuard{Path: exe, Args: []string{vmbackup.GuardCommand}}.Start
	} else {
		logger.Warn("no thaw guard: cannot find this executable", "err", err)
	}
	return svc
}

func confOr(dir string) string {
	if dir == "" {
		return "/etc/vmware-tools"
	}
	return dir
}
