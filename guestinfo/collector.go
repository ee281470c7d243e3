package guestinfo

import (
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
