package vmbackup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/govmtools/govmtools/guestinfo"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Dev    string // "major:minor" of the superblock
	Root   string
	Path   string // mount point, unescaped
	FSType string
	Source string
}

// ParseMountInfo decodes /proc/<pid>/mountinfo (proc(5)). Lines that do
// not have the fields it needs are skipped and counted in bad.
func ParseMountInfo(r io.Reader) (mounts []Mount, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountLine(sc.Bytes())
		if !ok {
			bad++
			continue
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return mounts, bad, fmt.Errorf("mountinfo: %w", err)
	}
	return mounts, bad, nil
}

func parseMountLine(line []byte) (Mount, bool) {
	f := bytes.Fields(line)
	// id parent dev root point options [optional...] - type source superopts
	sep := -1
	for i := 6; i < len(f); i++ {
		if string(f[i]) == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || len(f) < sep+3 || !bytes.Contains(f[2], []byte(":")) {
		return Mount{}, false
	}
	path := unescapeMount(string(f[4]))
	if !strings.HasPrefix(path, "/") {
		return Mount{}, false
	}
	return Mount{Dev: string(f[2]), Root: unescapeMount(string(f[3])), Path: path, FSType: unescapeMount(string(f[sep+1])), Source: unescapeMount(string(f[sep+2]))}, true
}

// unescapeMount undoes the kernel's \ooo escapes (space, tab, newline,
// backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOct(s[i+1]) && isOct(s[i+2]) && isOct(s[i+3]) {
			v := (int(s[i+1]-'0') << 6) | (int(s[i+2]-'0') << 3) | int(s[i+3]-'0')
			if v < 256 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

// remoteTypes are skipped because opening them can hang (vmtoolsd's list,
// extended with other network and cluster file systems).
var remoteTypes = map[string]bool{
	"autofs": true, "cifs": true, "smb3": true, "smbfs": true, "nfs": true, "nfs4": true, "vmhgfs": true,
	"fuse.vmhgfs-fuse": true, "fuse.sshfs": true, "9p": true, "ceph": true, "fuse.ceph": true,
	"glusterfs": true, "fuse.glusterfs": true, "afs": true, "lustre": true, "davfs": true, "fuse.s3fs": true,
	"fuse.rclone": true,
}

// pseudoTypes cannot be frozen (vmtoolsd tries and ignores EOPNOTSUPP;
// govmtools does not open them at all).
var pseudoTypes = map[string]bool{
	"proc": true, "sysfs": true, "tmpfs": true, "devtmpfs": true, "devpts": true, "cgroup": true, "cgroup2": true,
	"securityfs": true, "debugfs": true, "tracefs": true, "pstore": true, "bpf": true, "mqueue": true,
	"hugetlbfs": true, "configfs": true, "fusectl": true, "binfmt_misc": true, "efivarfs": true, "ramfs": true,
	"rpc_pipefs": true, "nsfs": true, "overlay": true, "squashfs": true, "iso9660": true, "selinuxfs": true,
	"nfsd": true, "fuse.gvfsd-fuse": true, "fuse.portal": true, "fuse.lxcfs": true,
}

// Skip reasons.
var (
	errRemote   = errors.New("network file system")
	errPseudo   = errors.New("pseudo file system")
	errExcluded = errors.New("excludedFileSystems")
	errDup      = errors.New("same superblock as an earlier mount")
)

// Skipped is a mount left out of the freeze and why.
type Skipped struct {
	Mount  Mount
	Reason error
}

// ErrNoFileSystems is the freeze failure when nothing is left to freeze
// after the exclusions (vmtoolsd's "No file systems to freeze.").
var ErrNoFileSystems = errors.New("no file systems to freeze")

// SelectMounts returns the mount points to freeze, in freeze order: local
// file systems, one per superblock (the first mount of each wins), minus
// excluded globs, last mounted first so a loop-mounted image freezes
// before the file system holding its backing file.
func SelectMounts(mounts []Mount, excluded string) (freeze []Mount, skipped []Skipped) {
	seen := map[string]bool{}
	var keep []Mount
	pats := splitExcluded(excluded)
	for _, m := range mounts {
		src := strings.ToLower(m.Source)
		switch {
		case remoteTypes[m.FSType] || strings.HasPrefix(m.FSType, "nfs") || strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
			skipped = append(skipped, Skipped{m, errRemote})
		case pseudoTypes[m.FSType]:
			skipped = append(skipped, Skipped{m, errPseudo})
		case seen[m.Dev]:
			skipped = append(skipped, Skipped{m, errDup})
		case matchAny(pats, m.Path):
			// Deduplication comes first, as in vmtoolsd: an excluded
			// mount still hides later mounts of its superblock.
			seen[m.Dev] = true
			skipped = append(skipped, Skipped{m, errExcluded})
		default:
			seen[m.Dev] = true
			keep = append(keep, m)
		}
	}
	for i := len(keep) - 1; i >= 0; i-- {
		freeze = append(freeze, keep[i])
	}
	return freeze, skipped
}

func splitExcluded(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p != "" { // whitespace is not trimmed, as GLib's pattern list
			out = append(out, p)
		}
	}
	return out
}

func matchAny(pats []string, s string) bool {
	for _, p := range pats {
		if guestinfo.Wildcard(p, s) { // glib's g_pattern_match_simple, '*' matching '/' too
			return true
		}
	}
	return false
}
