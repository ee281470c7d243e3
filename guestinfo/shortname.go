package guestinfo

import (
	"fmt"
	"strings"
)

// shortNameRule maps a substring of the lower-cased distro string to a
// guest ID. The table is VMware's (open-vm-tools lib/misc/hostinfoPosix.c,
// shortNameArray, 13.x): only IDs the host knows may be sent, so it is
// never extended here (open-vm-tools#31: "Unable to convert Vigor value
// 'Gentoo-64'" came from an unknown ID). Order matters: the first
// matching pattern wins.
type shortNameRule struct {
	pattern string
	name    func(version int, distro, arch string) string
}

// generic returns the fixed ID with the architecture prefix.
func generic(id string) func(int, string, string) string {
	return func(_ int, _ string, arch string) string { return arch + id }
}

var shortNameTable = []shortNameRule{
	{"almalinux", generic("almaLinux")},
	{"amazon", func(v int, _, arch string) string { return fmt.Sprintf("%samazonlinux%d", arch, max(v, 2)) }},
	{"annvix", generic("Annvix")},
	{"arch", generic("Arch")},
	{"arklinux", generic("Arklinux")},
	{"asianux", func(v int, _, arch string) string {
		if v < 3 {
			return "asianux"
		}
		return fmt.Sprintf("%sasianux%d", arch, v)
	}},
	{"aurox", generic("Aurox")},
	{"bigcloud", func(int, string, string) string { return "" }}, // generic Linux ID
	{"black cat", generic("BlackCat")},
	{"centos", func(v int, _, arch string) string {
		if v < 6 {
			return "centos"
		}
		return fmt.Sprintf("%scentos%d", arch, v)
	}},
	{"cobalt", generic("Cobalt")},
	{"conectiva", generic("Conectiva")},
	{"debian", func(v int, _, arch string) string {
		if v <= 4 {
			return "debian4"
		}
		return fmt.Sprintf("%sdebian%d", arch, v)
	}},
	{"red hat", func(v int, distro, arch string) string {
		switch {
		case !strings.Contains(distro, "enterprise"):
			return arch + "redhat"
		case v == 0:
			return arch + "rhel"
		}
		return fmt.Sprintf("%srhel%d", arch, v)
	}},
	{"enterprise linux", oracle},
	{"fedora", generic("Fedora")},
	{"flatcar", generic("flatcar")},
	{"fusionos", generic("fusionos")},
	{"gentoo", generic("Gentoo")},
	{"immunix", generic("Immunix")},
	{"kylin linux", generic("kylinlinux")},
	{"linux-from-scratch", generic("Linux-From-Scratch")},
	{"linux-ppc", generic("Linux-PPC")},
	{"mandrake", generic("mandrake")},
	{"mandriva", generic("mandriva")},
	{"miracle linux", generic("miraclelinux")},
	{"mklinux", generic("MkLinux")},
	{"opensuse", generic("opensuse")},
	{"oracle", oracle},
	{"pardus", generic("pardus")},
	{"pld", generic("PLD")},
	{"prolinux", generic("prolinux")},
	{"rocky linux", generic("rockyLinux")},
	{"slackware", generic("Slackware")},
	{"sme server", generic("SMEServer")},
	{"suse", suse},
	{"tiny sofa", generic("Tiny Sofa")},
	{"turbolinux", generic("turbolinux")},
	{"ubuntu", generic("ubuntu")},
	{"ultra penguin", generic("UltraPenguin")},
	{"united linux", generic("UnitedLinux")},
	{"va linux", generic("VALinux")},
	{"vmware photon", generic("vmware-photon")},
	{"yellow dog", generic("Yellow Dog")},
}

func oracle(v int, _, arch string) string {
	if v == 0 {
		return arch + "oraclelinux"
	}
	return fmt.Sprintf("%soraclelinux%d", arch, v)
}

func suse(_ int, distro, arch string) string {
	if !strings.Contains(distro, "enterprise") {
		switch {
		case strings.Contains(distro, "sun"):
			return arch + "sjds"
		case strings.Contains(distro, "novell"):
			return arch + "nld9"
		}
		return arch + "suse"
	}
	for _, p := range []struct{ pat, id string }{
		{"desktop 10", "sles10"}, {"desktop 11", "sles11"}, {"desktop 12", "sles12"},
		{"desktop 15", "sles15"}, {"desktop 16", "sles16"}, {"server 10", "sles10"},
		{"server 11", "sles11"}, {"server 12", "sles12"}, {"server 15", "sles15"},
		{"server 16", "sles16"}, {"server for sap applications 12", "sles12"},
	} {
		if strings.Contains(distro, p.pat) {
			return arch + p.id
		}
	}
	return arch + "sles"
}

// ShortName looks distro (the joined os-release values) up in VMware's
// table. version is VERSION_ID (its leading number is used); goarch
// selects the "arm-" prefix on arm64. The "-64" suffix is not added. ok
// is false when the distro is not in the table (the caller then sends the
// generic Linux ID).
func ShortName(distro, version, goarch string) (id string, ok bool) {
	lower := strings.ToLower(distro)
	prefix := ""
	if strings.HasPrefix(goarch, "arm") {
		prefix = "arm-"
	}
	for _, r := range shortNameTable {
		if strings.Contains(lower, r.pattern) {
			id := r.name(leadingUint(version), lower, prefix)
			return id, id != ""
		}
	}
	return "", false
}
