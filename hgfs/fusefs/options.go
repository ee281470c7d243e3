package fusefs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cache is the caching mode (-o cache=): like virtio-fs.
type Cache int

// Cache modes.
const (
	// CacheAuto: attributes and entries live AttrTimeout/EntryTimeout;
	// file data is kept across opens while the host's mtime and size
	// are unchanged (close-to-open consistency).
	CacheAuto Cache = iota
	// CacheNone: no attribute, entry or data caching (direct I/O).
	CacheNone
	// CacheAlways: long timeouts and data always kept; only our own
	// changes invalidate. For shares nobody else writes to.
	CacheAlways
)

func (c Cache) String() string {
	return [...]string{"auto", "none", "always"}[c]
}

// Options are the mount options of vmhgfs-fuse that shape the file
// system (the rest go to the kernel).
type Options struct {
	// UID and GID, when set, replace the host's owner ids in attributes.
	UID, GID *uint32
	// Umask, Fmask and Dmask clear permission bits in attributes: Umask
	// for everything, Fmask for non-directories, Dmask for directories.
	Umask, Fmask, Dmask uint32
	ReadOnly            bool
	// AllowOther lets every local user reach the mount (allow_other);
	// AllowRoot lets root and the mounting user only (allow_root).
	AllowOther, AllowRoot bool
	// DefaultPermissions makes the kernel check every access against
	// the modes and owners the mount shows (after uid=, gid= and the
	// masks). It is always on when other users can reach the mount,
	// unless UnsafeNoPermissions; see Permissions.
	DefaultPermissions bool
	// UnsafeNoPermissions (unsafe_no_default_permissions) turns the
	// permission checks off on a mount other users can reach: any of
	// them can then read, change and delete everything the host lets
	// the VM's user reach, whatever the modes say.
	UnsafeNoPermissions bool
	AttrTimeout         time.Duration
	EntryTimeout        time.Duration
	Cache               Cache
	// MaxRead and MaxWrite bound kernel requests; 0 means the size
	// negotiated with the host.
	MaxRead, MaxWrite int
	FsName            string
	Subtype           string
	// Kernel holds options passed through to the mount (fusermount).
	Kernel []string
	// Readahead is the kernel's readahead for the mount in KiB (0: the
	// kernel's default of 128; ReadaheadAuto: two of the largest READ
	// requests).
	Readahead int
	// Mountpoint is where the caller mounts the file system (not a mount
	// option): the readahead is set on the mount there (ApplyReadahead).
	Mountpoint string
	// Debug traces every FUSE request.
	Debug bool
}

// DefaultOptions are libfuse's defaults (1 s timeouts) with cache=auto.
func DefaultOptions() Options {
	return Options{AttrTimeout: time.Second, EntryTimeout: time.Second, FsName: "vmhgfs-fuse", Subtype: "vmhgfs-fuse", Readahead: ReadaheadAuto}
}

// ignored are generic mount options that mount(8) and mount.fuse3 may
// pass along and that need no action here.
var ignored = map[string]bool{
	"rw": true, "defaults": true, "dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "atime": true, "noatime": true, "relatime": true,
	"norelatime": true, "strictatime": true, "nodiratime": true, "diratime": true,
	"async": true, "sync": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "owner": true, "_netdev": true, "nofail": true, "big_writes": true,
	"nobig_writes": true, "auto_unmount": true, "nonempty": true, "use_ino": true,
	"kernel_cache": true, "hard_remove": true, "auto_cache": true, "silent": true,
}

// UnsafeNoPermissionsOption is the mount option that turns the kernel's
// permission checks off on an allow_other or allow_root mount.
const UnsafeNoPermissionsOption = "unsafe_no_default_permissions"

// Permissions reports whether the kernel checks permissions on the
// mount (default_permissions): when asked to, and always when users
// other than the mounting one can reach it (allow_other, allow_root)
// unless the unsafe opt-out is given. Without the checks the only rule
// is the host's, as the VM's user: every local user who can reach the
// mount could read and change every file on it.
func (o *Options) Permissions() bool {
	return o.DefaultPermissions || ((o.AllowOther || o.AllowRoot) && !o.UnsafeNoPermissions)
}

// ParseOptions applies comma-separated -o option strings to o.
func (o *Options) Parse(opts ...string) error {
	for _, s := range opts {
		for kv := range strings.SplitSeq(s, ",") {
			if kv == "" {
				continue
			}
			if err := o.parseOne(kv); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseMask(k, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("option %s=%s: want an octal mask", k, v)
	}
	return uint32(n), nil
}

func parseID(k, v string) (*uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("option %s=%s: want a number", k, v)
	}
	id := uint32(n)
	return &id, nil
}

func parseSeconds(k, v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("option %s=%s: want seconds", k, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func (o *Options) parseOne(kv string) error {
	k, v, hasV := strings.Cut(kv, "=")
	var err error
	switch k {
	case "uid":
		o.UID, err = parseID(k, v)
	case "gid":
		o.GID, err = parseID(k, v)
	case "umask":
		o.Umask, err = parseMask(k, v)
	case "fmask":
		o.Fmask, err = parseMask(k, v)
	case "dmask":
		o.Dmask, err = parseMask(k, v)
	case "ro":
		o.ReadOnly = true
	case "allow_other":
		o.AllowOther = true
	case "allow_root":
		o.AllowRoot = true
	case "default_permissions":
		o.DefaultPermissions = true
	case UnsafeNoPermissionsOption:
		o.UnsafeNoPermissions = true
	case "attr_timeout":
		o.AttrTimeout, err = parseSeconds(k, v)
	case "entry_timeout":
		o.EntryTimeout, err = parseSeconds(k, v)
	case "negative_timeout", "ac_attr_timeout":
		_, err = parseSeconds(k, v)
	case "cache":
		switch v {
		case "auto":
			o.Cache = CacheAuto
		case "none":
			o.Cache = CacheNone
		case "always":
			o.Cache = CacheAlways
		default:
			err = fmt.Errorf("option cache=%s: want none, auto or always", v)
		}
	case "direct_io":
		o.Cache = CacheNone
	case "max_read", "max_write":
		var n uint64
		n, err = strconv.ParseUint(v, 10, 31)
		if err == nil && n < 4096 {
			err = fmt.Errorf("option %s=%s: at least 4096", k, v)
		}
		if k == "max_read" {
			o.MaxRead = int(n)
		} else {
			o.MaxWrite = int(n)
		}
	case "readahead":
		var n uint64
		n, err = strconv.ParseUint(v, 10, 20)
		if err != nil {
			err = fmt.Errorf("option readahead=%s: want KiB", v)
		}
		o.Readahead = int(n)
	case "fsname":
		o.FsName = v
	case "subtype":
		o.Subtype = v
	case "debug":
		o.Debug = true
	default:
		if ignored[k] || strings.HasPrefix(k, "x-") || k == "comment" {
			return nil
		}
		if hasV && (k == "context" || k == "fscontext" || k == "defcontext" || k == "rootcontext") {
			o.Kernel = append(o.Kernel, kv)
			return nil
		}
		return fmt.Errorf("unknown mount option %q", kv)
	}
	return err
}
