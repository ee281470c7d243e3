package main

import (
	"errors"
	"fmt"
	"strings"
)

// args is the parsed command line. It accepts what libfuse programs
// accept, in any order, including the forms mount.fuse and mount.fuse3
// use from fstab ("SOURCE MOUNTPOINT -o OPTS", or "MOUNTPOINT -o OPTS"
// for the "vmhgfs-fuse /mnt/hgfs fuse ..." line).
type args struct {
	source     string // "" or ".host:/..."
	mountpoint string
	opts       []string // -o values
	foreground bool
	debug      bool
	enabled    bool
	help       bool
	version    bool
	rpc        string
	channels   int
	logFile    string
}

const usage = `usage: vmhgfs-fuse [-o OPTIONS] [-f] [-d] [.host:/[SHARE[/PATH]]] MOUNTPOINT
       vmhgfs-fuse -e|--enabled
       vmhgfs-fuse -h|--help | -V|--version

Mounts the host's shared folders (all of them at .host:/, or one share or a
directory inside it) on MOUNTPOINT. Without -f it returns once the mount is
ready and keeps serving it in the background.

  -o OPTIONS      comma-separated mount options (below); may repeat
  -f              stay in the foreground
  -d              foreground, and trace every FUSE request to stderr
  -e, --enabled   exit 0 if this kernel can mount it (FUSE present), 2 if not
  --rpc MODE      how to reach the VMX: auto, vsock, backdoor, unix:DIR
                  (default $GOVMTOOLS_RPC, then auto); also -o rpc=MODE
  --channels N    RPCI channels, i.e. HGFS requests in flight (default 4)
  --log-file F    where the background process logs (default: nowhere)

Options: uid=N gid=N umask=OOO fmask=OOO dmask=OOO allow_other allow_root
  default_permissions unsafe_no_default_permissions ro rw attr_timeout=S entry_timeout=S (default 1)
  cache=none|auto|always max_read=N max_write=N (default: the size the
  host negotiates) fsname=NAME subtype=NAME; generic mount options
  (defaults, nodev, nosuid, noatime, _netdev, nofail, x-*, ...) are accepted.

allow_other lets every local user reach the mount, allow_root root and the
mounting user; either turns on default_permissions (the kernel checks the
modes and owners the mount shows, after uid=, gid= and the masks) unless
unsafe_no_default_permissions is given, which lets every such user read,
change and delete whatever the host lets the VM reach.

SIGUSR1 logs the per-operation HGFS round trips and latencies;
GOVMTOOLS_HGFS_CPUPROFILE=FILE writes a CPU profile of the daemon's run.
`

func parseArgs(argv []string) (args, error) {
	var a args
	var pos []string
	for i := 0; i < len(argv); i++ {
		s := argv[i]
		next := func() (string, error) {
			if i+1 >= len(argv) {
				return "", fmt.Errorf("%s needs a value", s)
			}
			i++
			return argv[i], nil
		}
		positional, err := a.flag(s, next)
		if err != nil {
			return a, err
		}
		if positional {
			pos = append(pos, s)
		}
	}
	if a.enabled || a.help || a.version {
		return a, nil
	}
	switch len(pos) {
	case 1:
		a.mountpoint = pos[0]
	case 2:
		a.source, a.mountpoint = pos[0], pos[1]
	default:
		return a, errors.New("want [.host:/[SHARE[/PATH]]] MOUNTPOINT")
	}
	a.ownOptions()
	return a, nil
}

// flag takes one argument s (next reads a flag's value); it reports
// whether s is a positional argument.
func (a *args) flag(s string, next func() (string, error)) (positional bool, err error) {
	switch {
	case s == "-o":
		var v string
		v, err = next()
		a.opts = append(a.opts, v)
	case strings.HasPrefix(s, "-o"):
		a.opts = append(a.opts, s[2:])
	case s == "-f":
		a.foreground = true
	case s == "-d" || s == "--debug":
		a.foreground, a.debug = true, true
	case s == "-s":
		// single-threaded: accepted for compatibility
	case s == "-e" || s == "--enabled":
		a.enabled = true
	case s == "-h" || s == "--help":
		a.help = true
	case s == "-V" || s == "--version":
		a.version = true
	case s == "--rpc":
		a.rpc, err = next()
	case strings.HasPrefix(s, "--rpc="):
		a.rpc = strings.TrimPrefix(s, "--rpc=")
	case s == "--channels":
		var v string
		if v, err = next(); err == nil {
			_, err = fmt.Sscanf(v, "%d", &a.channels)
		}
	case s == "--log-file":
		a.logFile, err = next()
	case strings.HasPrefix(s, "-") && s != "-":
		err = fmt.Errorf("unknown flag %s", s)
	default:
		positional = true
	}
	return positional, err
}

// ownOptions pulls our own options (rpc=MODE) out of -o.
func (a *args) ownOptions() {
	var kept []string
	for _, o := range a.opts {
		var rest []string
		for kv := range strings.SplitSeq(o, ",") {
			if v, ok := strings.CutPrefix(kv, "rpc="); ok {
				a.rpc = v
				continue
			}
			rest = append(rest, kv)
		}
		kept = append(kept, strings.Join(rest, ","))
	}
	a.opts = kept
}

// basePath turns the mount source into an HGFS path: ".host:/" and ""
// (or the program name, as fstab's "vmhgfs-fuse /mnt/hgfs fuse" line
// gives) mean every share; ".host:/share/sub" means that directory.
func basePath(source string) (string, error) {
	switch source {
	case "", "vmhgfs-fuse", ".host:", ".host:/":
		return "", nil
	}
	rest, ok := strings.CutPrefix(source, ".host:")
	if !ok {
		return "", fmt.Errorf("mount source %q: want .host:/[SHARE[/PATH]]", source)
	}
	var parts []string
	for p := range strings.SplitSeq(rest, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", fmt.Errorf("mount source %q: no .. components", source)
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}
