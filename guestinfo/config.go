package guestinfo

import (
	"strings"
	"time"
)

// Config is the part of tools.conf guest info honours. The daemon parses
// tools.conf and fills it; the zero value is the open-vm-tools default
// except where noted.
type Config struct {
	// ExcludeNICs is [guestinfo] exclude-nics split at commas (no
	// trimming, as open-vm-tools). nil means the key is unset: the
	// default patterns DefaultExcludeNICs apply. A non-nil empty slice
	// (the key set to an empty value) excludes no name; kernel-fact
	// classification still applies.
	ExcludeNICs []string
	// PrimaryNICs and LowPriorityNICs are [guestinfo] primary-nics and
	// low-priority-nics.
	PrimaryNICs     []string
	LowPriorityNICs []string
	// MaxIPv4Routes and MaxIPv6Routes are [guestinfo] max-ipv4-routes and
	// max-ipv6-routes. Negative means unset (100); 0 gathers none; values
	// over 100 count as 100.
	MaxIPv4Routes, MaxIPv6Routes int
	// PollInterval is [guestinfo] poll-interval: the periodic resync.
	// 0 means the default, 30 s; negative disables the periodic gather
	// (the netlink subscription still reports changes).
	PollInterval time.Duration
	// DisableDiskInfo is [guestinfo] disable-query-diskinfo.
	DisableDiskInfo bool
	// DiskIncludeReserved is [guestinfo] diskinfo-include-reserved: report
	// f_bfree instead of f_bavail (when running as root).
	DiskIncludeReserved bool
	// DiskNoDevices is the negation of [guestinfo] diskinfo-report-device
	// (default true).
	DiskNoDevices bool
	// ShortName and LongName are [guestosinfo] short-name and long-name.
	// LongName is ignored without ShortName.
	ShortName, LongName string
}

// DefaultExcludeNICs returns open-vm-tools' default exclude-nics on
// Linux (a new slice each call).
func DefaultExcludeNICs() []string {
	return []string{"docker*", "veth*", "virbr*", "antrea-*", "cali*"}
}

// DefaultConfig returns the defaults: routes unset (100 each).
func DefaultConfig() Config {
	return Config{MaxIPv4Routes: -1, MaxIPv6Routes: -1}
}

// DefaultPollInterval is open-vm-tools' poll-interval default.
const DefaultPollInterval = 30 * time.Second

// SplitPatterns splits a tools.conf pattern list at commas, without
// trimming white space (open-vm-tools does not either). An empty value
// gives an empty, non-nil list.
func SplitPatterns(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

func (c *Config) exclude() []string {
	if c.ExcludeNICs == nil {
		return DefaultExcludeNICs()
	}
	return c.ExcludeNICs
}

func routeCap(v int) int {
	if v < 0 || v > 100 {
		return 100
	}
	return v
}

// matchAny reports whether name matches one of the glib-style wildcard
// patterns ('*' any run, '?' one character).
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if p != "" && Wildcard(p, name) {
			return true
		}
	}
	return false
}

// Wildcard matches glib's g_pattern_match_simple: '*' and '?' only, both
// matching any byte, '/' included; no classes, no escapes (tools.conf's
// NIC and file-system lists).
func Wildcard(p, s string) bool {
	// Iterative matcher with one backtrack point.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
