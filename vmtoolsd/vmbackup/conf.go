package vmbackup

import (
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// Group is the tools.conf group.
const Group = "vmbackup"

// DefaultTimeout is the abort timer when tools.conf sets none: vCenter's
// 15-minute quiesce limit (GUEST_QUIESCE_DEFAULT_TIMEOUT_IN_SEC).
const DefaultTimeout = 900 * time.Second

// maxTimeout is the largest timeout vmtoolsd accepts (2 147 483 s);
// larger values fall back to the default.
const maxTimeout = 2147483 * time.Second

// Settings are the [vmbackup] keys, read afresh at every start.
type Settings struct {
	EnableSyncDriver        bool          // false: the null provider (sync(2) only)
	EnableNullDriver        bool          // sync(2) fallback when FIFREEZE is unavailable
	ExcludedFileSystems     string        // comma-separated mount point globs
	IgnoreFrozenFileSystems bool          // skip file systems frozen by someone else (EBUSY)
	ExecScripts             bool          // run the freeze/thaw scripts
	ScriptArg               string        // third script argument
	Timeout                 time.Duration // abort timer; 0 disables it (the frozen window stays capped)
	ScriptTimeout           time.Duration // govmtools: per-script limit; 0 = only the abort timer
	EnableXMLManifest       bool          // write and announce the quiesce manifest
	ManifestDir             string        // govmtools: where quiesce_manifest.xml goes
	EnableNVMe              bool          // capability 36
}

// DefaultSettings are the values with no tools.conf. enableNVMe is false
// as in Debian's 12.2.0 (open-vm-tools 13 turned it on).
func DefaultSettings() Settings {
	return Settings{
		EnableSyncDriver:  true,
		EnableNullDriver:  true,
		ExecScripts:       true,
		Timeout:           DefaultTimeout,
		EnableXMLManifest: true,
		ManifestDir:       DefaultManifestDir,
	}
}

// Schema lists the [vmbackup] keys honoured.
func Schema() toolsconf.Schema {
	return toolsconf.Schema{Group: {
		"enableSyncDriver":        toolsconf.Bool,
		"enableNullDriver":        toolsconf.Bool,
		"excludedFileSystems":     toolsconf.String,
		"ignoreFrozenFileSystems": toolsconf.Bool,
		"execScripts":             toolsconf.Bool,
		"scriptArg":               toolsconf.String,
		"timeout":                 toolsconf.Int,
		"scriptTimeout":           toolsconf.Seconds,
		"enableXmlManifest":       toolsconf.Bool,
		"manifestDir":             toolsconf.Path,
		"enableNVMe":              toolsconf.Bool,
		"quiesceApps":             toolsconf.Bool,
		"quiesceFS":               toolsconf.Bool,
		"allowHWProvider":         toolsconf.Bool,
		"vssUseDefault":           toolsconf.Bool,
		"forceQuiesce":            toolsconf.Bool,
	}}
}

// ReadSettings reads f (nil means no file).
func ReadSettings(f *toolsconf.File) Settings {
	d := DefaultSettings()
	if f == nil {
		return d
	}
	s := Settings{
		EnableSyncDriver:        f.Bool(Group, "enableSyncDriver", d.EnableSyncDriver),
		EnableNullDriver:        f.Bool(Group, "enableNullDriver", d.EnableNullDriver),
		ExcludedFileSystems:     f.String(Group, "excludedFileSystems", ""),
		IgnoreFrozenFileSystems: f.Bool(Group, "ignoreFrozenFileSystems", false),
		ExecScripts:             f.Bool(Group, "execScripts", d.ExecScripts),
		ScriptArg:               f.String(Group, "scriptArg", ""),
		Timeout:                 d.Timeout,
		ScriptTimeout:           f.Seconds(Group, "scriptTimeout", 0),
		EnableXMLManifest:       f.Bool(Group, "enableXmlManifest", d.EnableXMLManifest),
		ManifestDir:             f.String(Group, "manifestDir", d.ManifestDir),
		EnableNVMe:              f.Bool(Group, "enableNVMe", d.EnableNVMe),
	}
	if n := f.Int(Group, "timeout", -1); n >= 0 && time.Duration(n)*time.Second <= maxTimeout {
		s.Timeout = time.Duration(n) * time.Second
	}
	return s
}
