package guestinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

// OSInfo is what the guest reports about its operating system.
type OSInfo struct {
	ShortName string // guest ID, e.g. "vmware-photon-64" (INFO_OS_NAME)
	FullName  string // e.g. "Linux 6.1.10-11.ph5 VMware Photon OS/Linux ..." (INFO_OS_NAME_FULL)
	Detailed  infoproto.Detailed
}

// osReleaseKeys are the os-release keys vmtoolsd reads, in its field
// order (PRETTY_NAME, NAME, VERSION_ID, BUILD_ID, VERSION, CPE_NAME).
var osReleaseKeys = []string{"PRETTY_NAME=", "NAME=", "VERSION_ID=", "BUILD_ID=", "VERSION=", "CPE_NAME="}

// OS identifies the operating system as vmtoolsd does (docs/architecture.md
// section 6): the full name is "<uname -s> <uname -r> <distro>", where distro
// joins every os-release value found, in file order; the short name comes
// from VMware's table (only IDs the host knows) or the generic Linux ID
// for the kernel; the detailed fields come from os-release and uname.
// cfg's short-name and long-name override the names. The LSB fallback
// (lsb_release) is not used: it only wins when os-release is missing.
func (s *System) OS(cfg *Config) (OSInfo, error) {
	u, err := s.uname()
	if err != nil {
		return OSInfo{}, err
	}
	arch := s.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	values, distro, ok := s.osRelease()
	major, minor := kernelVersion(u.Release)
	var short string
	if ok {
		version := values["VERSION_ID="]
		if _, has := values["VERSION_ID="]; !has {
			version = firstDigits(distro)
		}
		short, ok = ShortName(distro, version, arch)
		if !ok {
			short = genericShortName(major)
		}
	} else {
		distro = genericFullName(major, minor)
		short = genericShortName(major)
	}
	bits := "32"
	if strings.Contains(u.Machine, "x86_64") || strings.Contains(u.Machine, "aarch64") {
		bits = "64"
		short += "-64"
	}
	info := OSInfo{ShortName: short, FullName: cut(u.Sysname+" "+u.Release+" "+distro, infoproto.MaxOSFullNameLen)}
	d := &info.Detailed
	d.Architecture = "X86"
	if strings.HasPrefix(arch, "arm") {
		d.Architecture = "Arm"
	}
	d.Bitness = bits
	d.BuildNumber = values["BUILD_ID="]
	d.CPEString = values["CPE_NAME="]
	d.DistroAddlVersion = values["VERSION="]
	d.DistroName = values["NAME="]
	if d.DistroName == "" {
		d.DistroName = u.Sysname
	}
	d.DistroVersion = values["VERSION_ID="]
	d.FamilyName = u.Sysname
	d.KernelVersion = u.Release
	d.PrettyName = values["PRETTY_NAME="]
	if cfg != nil && cfg.ShortName != "" {
		info.ShortName = cfg.ShortName
		info.FullName = cfg.LongName
	}
	info.ShortName = cut(info.ShortName, infoproto.MaxOSNameLen)
	return info, nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// osRelease reads /etc/os-release, else /usr/lib/os-release, with
// vmtoolsd's rules: a line starting with one of the keys; a value in
// double quotes runs to the last quote of the line, otherwise to the end
// of the line. distro joins the values in file order.
func (s *System) osRelease() (map[string]string, string, bool) {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := s.readFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		values := map[string]string{}
		var parts []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			for _, k := range osReleaseKeys {
				v, ok := strings.CutPrefix(line, k)
				if !ok {
					continue
				}
				if strings.HasPrefix(v, `"`) {
					end := strings.LastIndexByte(v[1:], '"')
					if end < 0 {
						return nil, "", false // invalid os-release: vmtoolsd gives up
					}
					v = v[1 : 1+end]
				}
				v = cut(v, infoproto.MaxDetailedField-1)
				values[k] = v
				parts = append(parts, v)
			}
		}
		if len(parts) == 0 {
			return nil, "", false
		}
		return values, strings.Join(parts, " "), true
	}
	return nil, "", false
}

func kernelVersion(release string) (major, minor int) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) > 0 {
		major, _ = strconv.Atoi(f[0])
	}
	if len(f) > 1 && strings.HasPrefix(release[len(f[0]):], ".") {
		minor, _ = strconv.Atoi(f[1])
	}
	return major, minor
}

// firstDigits returns the text from the first digit of s, as vmtoolsd
// finds a version when VERSION_ID is missing.
func firstDigits(s string) string {
	if i := strings.IndexAny(s, "0123456789"); i >= 0 {
		return s[i:]
	}
	return ""
}

// leadingUint parses like sscanf("%u"): optional white space, digits.
func leadingUint(s string) int {
	s = strings.TrimLeft(s, " \t\n")
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
		if n > 1<<30 {
			return 0
		}
	}
	return n
}

func genericShortName(major int) string {
	switch major {
	case 1, 2:
		return "other26xlinux" // 2.6+; older kernels are not supported guests
	case 3:
		return "other3xlinux"
	case 4:
		return "other4xlinux"
	case 5:
		return "other5xlinux"
	case 6:
		return "other6xlinux"
	default:
		return "other5xlinux" // newer kernels: the highest ID every host knows
	}
}

func genericFullName(major, minor int) string {
	switch major {
	case 3, 4, 5, 6:
		return fmt.Sprintf("Other Linux %d.x kernel", major)
	case 2:
		return "Other Linux 2.6.x kernel"
	}
	return fmt.Sprintf("Other Linux %d.%d kernel", major, minor)
}
