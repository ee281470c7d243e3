package guestinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// localFSTypes are the file systems vmtoolsd reports (wiper's list); NFS,
// SMB, vmhgfs, autofs, pseudo and unknown types are left out.
var localFSTypes = map[string]bool{
	"ext2": true, "ext3": true, "ext4": true, "xfs": true, "btrfs": true, "vfat": true,
	"msdos": true, "ntfs": true, "hfs": true, "ufs": true, "reiserfs": true, "zfs": true,
}

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Dev        string // "major:minor"
	Root       string // the mounted directory of the file system
	MountPoint string
	FSType     string
	Source     string
}

// Mounts parses /proc/self/mountinfo.
func (s *System) Mounts() ([]Mount, error) {
	b, err := s.readFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("guestinfo: mounts: %w", err)
	}
	return ParseMountInfo(b), nil
}

// ParseMountInfo parses mountinfo lines; malformed lines are skipped.
func ParseMountInfo(b []byte) []Mount {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		out = append(out, Mount{
			Dev:        f[2],
			Root:       unescapeMount(f[3]),
			MountPoint: unescapeMount(f[4]),
			FSType:     f[sep+1],
			Source:     unescapeMount(f[sep+2]),
		})
	}
	return out
}

// unescapeMount decodes the kernel's \ooo escapes (space, tab, newline,
// backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				sb.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// Disks lists local file systems with their sizes and, unless
// cfg.DiskNoDevices, the virtual disk slots under them. A mount of the same
// device and directory seen again (a bind mount of the same tree) is
// reported once; a file bind-mounted over a file (/etc/resolv.conf under
// `ip netns exec`, a container's /etc/hosts) is not a file system and is
// left out. Names are cut to 99 bytes, as vmtoolsd does.
func (s *System) Disks(cfg *Config) ([]infoproto.Disk, error) {
	mounts, err := s.Mounts()
	if err != nil {
		return nil, err
	}
	statfs := s.Statfs
	if statfs == nil {
		statfs = sysStatfs
	}
	seen := map[string]bool{}
	var out []infoproto.Disk
	for _, m := range mounts {
		if !localFSTypes[m.FSType] || seen[m.Dev+"\x00"+m.Root] {
			continue
		}
		seen[m.Dev+"\x00"+m.Root] = true
		if fi, err := os.Stat(s.path(m.MountPoint)); err == nil && !fi.IsDir() {
			continue // a file bind-mounted over a file, not a file system
		}
		st, err := statfs(s.path(m.MountPoint))
		if err != nil {
			continue // unmounted meanwhile, or not ours to read
		}
		free := st.Bavail
		if cfg.DiskIncludeReserved && os.Geteuid() == 0 {
			free = st.Bfree
		}
		d := infoproto.Disk{
			Name:   cut(m.MountPoint, infoproto.V0NameLen-1),
			Size:   st.Blocks * uint64(st.Bsize),
			Free:   free * uint64(st.Bsize),
			FSType: m.FSType,
		}
		if !cfg.DiskNoDevices {
			d.Devices = s.devices(m.Dev, 0)
		}
		out = append(out, d)
	}
	return out, nil
}

var (
	scsiAddr = regexp.MustCompile(`/\d+:\d+:(\d+):\d+$`)
	nvmeCtl  = regexp.MustCompile(`/nvme\d+$`)
)

// devices returns the virtual disk slots ("scsi0:1", "nvme0:0") holding
// the block device dev ("major:minor"), following device-mapper and MD
// slaves. Slots sysfs does not reveal (SATA, IDE, non-VMware controllers
// without a PCI slot label) are left out; nil when none is known.
func (s *System) devices(dev string, depth int) []string {
	if depth > 8 {
		return nil
	}
	base, err := filepath.EvalSymlinks(s.path("/sys/dev/block/" + dev))
	if err != nil {
		return nil
	}
	if slaves, err := os.ReadDir(filepath.Join(base, "slaves")); err == nil && len(slaves) > 0 {
		var out []string
		for _, sl := range slaves {
			b, err := os.ReadFile(filepath.Join(base, "slaves", sl.Name(), "dev"))
			if err != nil {
				continue
			}
			for _, d := range s.devices(strings.TrimSpace(string(b)), depth+1) {
				if !contains(out, d) {
					out = append(out, d)
				}
			}
		}
		return out
	}
	devPath := filepath.Join(base, "device")
	if _, err := os.Stat(devPath); err != nil {
		devPath = filepath.Join(base, "..", "device") // a partition
	}
	real, err := filepath.EvalSymlinks(devPath)
	if err != nil {
		return nil
	}
	var unit, pci string
	if m := scsiAddr.FindStringSubmatch(real); m != nil {
		unit = m[1]
		pci = filepath.Dir(filepath.Dir(filepath.Dir(real))) // H:C:T:L -> targetH:C:T -> hostH -> PCI
	} else if nvmeCtl.MatchString(real) {
		nsid, err := os.ReadFile(filepath.Join(filepath.Dir(devPath), "nsid"))
		n, err2 := strconv.Atoi(strings.TrimSpace(string(nsid)))
		if err != nil || err2 != nil || n < 1 {
			return nil
		}
		unit = strconv.Itoa(n - 1)
		pci = filepath.Dir(filepath.Dir(real)) // nvmeN -> nvme -> PCI
	} else {
		return nil
	}
	if label, err := os.ReadFile(filepath.Join(pci, "label")); err == nil {
		l := strings.TrimSpace(string(label))
		if l != "" {
			return []string{l + ":" + unit}
		}
	}
	if strings.HasSuffix(pci, "/0000:00:10.0") { // LSI Logic/BusLogic on PCI bus 0
		return []string{"scsi0:" + unit}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
