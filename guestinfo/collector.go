package guestinfo

import (
	"fmt"
	"os"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// Collector gathers everything guest info reports.
type Collector struct {
	Sys *System
	Net NetSource
}

// NicInfo builds the NIC list, routes and DNS configuration.
func (c *Collector) NicInfo(cfg *Config, hostname string) (NicResult, error) {
	snap, err := c.Net.Snapshot()
	if err != nil {
		return NicResult{}, err
	}
	return BuildNicInfo(snap, cfg, c.Sys.DNS(hostname)), nil
}

// PrimaryIP answers broadcastIP (see the package function PrimaryIP); the
// daemon injects it into its Set_Option handler.
func (c *Collector) PrimaryIP(cfg *Config) string {
	snap, err := c.Net.Snapshot()
	if err != nil {
		return ""
	}
	return PrimaryIP(snap, cfg)
}

// Disks lists local file systems (see System.Disks).
func (c *Collector) Disks(cfg *Config) ([]infoproto.Disk, error) { return c.Sys.Disks(cfg) }

// Hostname is gethostname().
func (c *Collector) Hostname() (string, error) { return c.Sys.Hostname() }

// OS identifies the operating system (see System.OS).
func (c *Collector) OS(cfg *Config) (OSInfo, error) { return c.Sys.OS(cfg) }

// Uptime is the time since boot in hundredths of a second.
func (c *Collector) Uptime() (int64, error) { return c.Sys.Uptime() }

// OSStamp changes when the os-release file changes (an upgrade), so that
// a cheap periodic check notices it without re-reading the file.
func (c *Collector) OSStamp() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if fi, err := os.Stat(c.Sys.path(p)); err == nil {
			return fmt.Sprintf("%s %d %d", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return ""
}
