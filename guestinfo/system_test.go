package guestinfo

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/guestinfo/infoproto"
)

func fixedUname(release, machine string) func() (Uname, error) {
	return func() (Uname, error) {
		return Uname{Sysname: "Linux", Nodename: "vm1.example.test", Release: release, Machine: machine}, nil
	}
}

// osRoot builds a root with the fixture os-release at path.
func osRoot(t *testing.T, fixture, path string) string {
	t.Helper()
	root := t.TempDir()
	if fixture == "" {
		return root
	}
	b, err := os.ReadFile(filepath.Join("testdata/os", fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOSNames(t *testing.T) {
	tests := []struct {
		fixture, path, release, machine, arch string
		short, full, detailed                 string
	}{
		{"photon5", "/etc/os-release", "6.1.10-11.ph5", "x86_64", "amd64",
			"vmware-photon-64", "Linux 6.1.10-11.ph5 VMware Photon OS 5.0 5.0 VMware Photon OS/Linux",
			"architecture='X86' bitness='64' distroAddlVersion='5.0' distroName='VMware Photon OS' distroVersion='5.0' familyName='Linux' kernelVersion='6.1.10-11.ph5' prettyName='VMware Photon OS/Linux'"},
		{"ubuntu2204", "/usr/lib/os-release", "5.15.0-91-generic", "x86_64", "amd64",
			"ubuntu-64", "Linux 5.15.0-91-generic Ubuntu 22.04.3 LTS Ubuntu 22.04 22.04.3 LTS (Jammy Jellyfish)",
			"architecture='X86' bitness='64' distroAddlVersion='22.04.3 LTS (Jammy Jellyfish)' distroName='Ubuntu' distroVersion='22.04' familyName='Linux' kernelVersion='5.15.0-91-generic' prettyName='Ubuntu 22.04.3 LTS'"},
		{"debian12", "/etc/os-release", "6.1.0-18-arm64", "aarch64", "arm64",
			"arm-debian12-64", "Linux 6.1.0-18-arm64 Debian GNU/Linux 12 (bookworm) Debian GNU/Linux 12 12 (bookworm)",
			"architecture='Arm' bitness='64' distroAddlVersion='12 (bookworm)' distroName='Debian GNU/Linux' distroVersion='12' familyName='Linux' kernelVersion='6.1.0-18-arm64' prettyName='Debian GNU/Linux 12 (bookworm)'"},
		{"rhel9", "/etc/os-release", "5.14.0-362.el9.x86_64", "x86_64", "amd64",
			"rhel9-64", "", ""},
		{"sles15", "/etc/os-release", "5.14.21", "x86_64", "amd64", "sles15-64", "", ""},
		{"nixos", "/etc/os-release", "6.6.8", "x86_64", "amd64",
			"other6xlinux-64", "Linux 6.6.8 23.11.20240101.abcdef NixOS NixOS 23.11 (Tapir) 23.11 (Tapir) 23.11",
			"architecture='X86' bitness='64' buildNumber='23.11.20240101.abcdef' distroAddlVersion='23.11 (Tapir)' distroName='NixOS' distroVersion='23.11' familyName='Linux' kernelVersion='6.6.8' prettyName='NixOS 23.11 (Tapir)'"},
		{"", "", "7.2.0", "x86_64", "amd64", "other5xlinux-64", "Linux 7.2.0 Other Linux 7.2 kernel",
			"architecture='X86' bitness='64' distroName='Linux' familyName='Linux' kernelVersion='7.2.0'"},
		{"", "", "4.19.0", "i686", "386", "other4xlinux", "Linux 4.19.0 Other Linux 4.x kernel", ""},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+tt.release, func(t *testing.T) {
			s := &System{Root: osRoot(t, tt.fixture, tt.path), Uname: fixedUname(tt.release, tt.machine), Arch: tt.arch}
			info, err := s.OS(nil)
			if err != nil {
				t.Fatal(err)
			}
			if info.ShortName != tt.short {
				t.Errorf("short %q, want %q", info.ShortName, tt.short)
			}
			if tt.full != "" && info.FullName != tt.full {
				t.Errorf("full %q\nwant %q", info.FullName, tt.full)
			}
			if tt.detailed != "" && info.Detailed.String() != tt.detailed {
				t.Errorf("detailed %s\nwant %s", info.Detailed.String(), tt.detailed)
			}
		})
	}
	// tools.conf overrides.
	s := &System{Root: osRoot(t, "photon5", "/etc/os-release"), Uname: fixedUname("6.1.10", "x86_64")}
	info, _ := s.OS(&Config{ShortName: "vmware-photon-64", LongName: "Custom"})
	if info.FullName != "Custom" {
		t.Fatal("long-name override")
	}
}

func TestShortNameTable(t *testing.T) {
	for _, tt := range []struct{ distro, version, want string }{
		{"Rocky Linux 9.3 (Blue Onyx)", "9.3", "rockyLinux"},
		{"AlmaLinux 9.3", "9.3", "almaLinux"},
		{"Amazon Linux 2", "2", "amazonlinux2"},
		{"Amazon Linux AMI 2018.03", "", "amazonlinux2"},
		{"CentOS Linux 7 (Core)", "7", "centos7"},
		{"CentOS release 5.11", "5", "centos"},
		{"Oracle Linux Server 8.9", "8.9", "oraclelinux8"},
		{"Enterprise Linux Enterprise Linux Server release 5.4 (Carthage)", "", "oraclelinux"},
		{"Fedora Linux 39", "39", "Fedora"},
		{"openSUSE Leap 15.5", "15.5", "opensuse"},
		{"SUSE Linux Enterprise Server for SAP Applications 12 SP5", "12", "sles12"},
		{"Flatcar Container Linux by Kinvolk", "3760.2.0", "flatcar"},
		{"Debian GNU/Linux 4.0", "4", "debian4"},
		{"Red Hat Linux 9", "9", "redhat"},
		{"BigCloud Enterprise Linux", "8", ""},
	} {
		got, _ := ShortName(tt.distro, tt.version, "amd64")
		if got != tt.want {
			t.Errorf("%q: %q, want %q", tt.distro, got, tt.want)
		}
	}
	if got, _ := ShortName("Ubuntu 22.04", "22.04", "arm64"); got != "arm-ubuntu" {
		t.Errorf("arm prefix: %q", got)
	}
}

func write(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDNS(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/run/systemd/resolve/stub-resolv.conf", "nameserver 127.0.0.53\noptions edns0\nsearch corp.example.test example.test\n")
	write(t, root, "/run/systemd/resolve/resolv.conf", "nameserver 198.51.100.53\nnameserver 2001:db8::53\nnameserver 198.51.100.54\nnameserver 198.51.100.55\nsearch corp.example.test example.test\n")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	s := &System{Root: root}
	d := s.DNS("vm1")
	want := []netip.Addr{netip.MustParseAddr("198.51.100.53"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("198.51.100.54"), netip.MustParseAddr("198.51.100.55")}
	if !reflect.DeepEqual(d.Servers, want) || *d.HostName != "vm1" || *d.DomainName != "corp.example.test" || strings.Join(d.Suffixes, " ") != "corp.example.test example.test" {
		t.Fatalf("resolved: %+v %q %v", d.Servers, *d.DomainName, d.Suffixes)
	}
	// A plain resolv.conf with a domain line.
	root2 := t.TempDir()
	write(t, root2, "/etc/resolv.conf", "# comment\ndomain example.test\nnameserver 203.0.113.53 # inline\nnameserver fe80::1%eth0\n")
	d = (&System{Root: root2}).DNS("h")
	if len(d.Servers) != 2 || d.Servers[1].String() != "fe80::1" || *d.DomainName != "example.test" || d.Suffixes[0] != "example.test" {
		t.Fatalf("plain: %+v", d)
	}
	// Nothing at all: domain from the hostname, empty lists.
	d = (&System{Root: t.TempDir()}).DNS("vm1.lab.example.test")
	if *d.DomainName != "lab.example.test" || d.Servers != nil {
		t.Fatalf("empty: %+v", d)
	}
	if _, err := infoproto.EncodeNicInfo(&infoproto.NicInfo{DNS: d}); err != nil {
		t.Fatal(err)
	}
}

func TestUptime(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/proc/uptime", "12345.67 4000.00\n")
	if up, err := (&System{Root: root}).Uptime(); err != nil || up != 1234567 {
		t.Fatalf("%d %v", up, err)
	}
	write(t, root, "/proc/uptime", "12.5 1\n")
	if up, _ := (&System{Root: root}).Uptime(); up != 1250 {
		t.Fatalf("%d", up)
	}
	write(t, root, "/proc/uptime", "x\n")
	if _, err := (&System{Root: root}).Uptime(); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestDisks(t *testing.T) {
	root := t.TempDir()
	mi, err := os.ReadFile("testdata/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, "/proc/self/mountinfo", string(mi))
	// sysfs: sda on a PVSCSI controller with a slot label, target 1;
	// dm-0 (LVM) over sdb on the same controller (target 2) and an NVMe
	// namespace 1 on a controller labelled nvme0.
	dev := filepath.Join(root, "sys/devices/pci0000:00/0000:00:15.0/0000:03:00.0")
	write(t, root, "sys/devices/pci0000:00/0000:00:15.0/0000:03:00.0/label", "scsi0\n")
	for _, tgt := range []string{"2:0:1:0", "2:0:2:0"} {
		os.MkdirAll(filepath.Join(dev, "host2/target"+tgt[:5], tgt), 0o755)
	}
	nvmePCI := filepath.Join(root, "sys/devices/pci0000:00/0000:00:16.0/0000:0b:00.0")
	os.MkdirAll(filepath.Join(nvmePCI, "nvme/nvme0"), 0o755)
	write(t, root, "sys/devices/pci0000:00/0000:00:16.0/0000:0b:00.0/label", "nvme0\n")
	blk := filepath.Join(root, "sys/block")
	mk := func(name, target string) {
		os.MkdirAll(filepath.Join(blk, name), 0o755)
		if err := os.Symlink(target, filepath.Join(blk, name, "device")); err != nil {
			t.Fatal(err)
		}
	}
	mk("sda", filepath.Join(dev, "host2/target2:0:1/2:0:1:0"))
	os.MkdirAll(filepath.Join(blk, "sda/sda3"), 0o755)
	mk("sdb", filepath.Join(dev, "host2/target2:0:2/2:0:2:0"))
	write(t, root, "sys/block/sdb/dev", "8:16\n")
	mk("nvme0n1", filepath.Join(nvmePCI, "nvme/nvme0"))
	write(t, root, "sys/block/nvme0n1/nsid", "1\n")
	os.MkdirAll(filepath.Join(blk, "nvme0n1/nvme0n1p1"), 0o755)
	os.MkdirAll(filepath.Join(blk, "dm-0/slaves"), 0o755)
	os.Symlink("../../sdb", filepath.Join(blk, "dm-0/slaves/sdb"))
	os.MkdirAll(filepath.Join(root, "sys/dev/block"), 0o755)
	for d, target := range map[string]string{"8:3": "sda/sda3", "8:1": "nvme0n1/nvme0n1p1", "253:0": "dm-0", "8:16": "sdb"} {
		if err := os.Symlink(filepath.Join(blk, target), filepath.Join(root, "sys/dev/block", d)); err != nil {
			t.Fatal(err)
		}
	}
	stats := map[string]FSStat{
		"/":             {Bsize: 4096, Blocks: 1000, Bfree: 600, Bavail: 500},
		"/boot/efi":     {Bsize: 512, Blocks: 100, Bfree: 50, Bavail: 50},
		"/srv/data dir": {Bsize: 4096, Blocks: 10, Bfree: 10, Bavail: 10},
		"/home":         {Bsize: 4096, Blocks: 1000, Bfree: 600, Bavail: 500},
		"/mnt/nfs":      {Bsize: 1, Blocks: 1},
		// A file bound over a file (ip netns exec, containers): no disk.
		"/etc/resolv.conf": {Bsize: 4096, Blocks: 1000, Bfree: 600, Bavail: 500},
	}
	write(t, root, "/etc/resolv.conf", "nameserver 192.0.2.53\n")
	s := &System{Root: root, Statfs: func(p string) (FSStat, error) {
		p = strings.TrimPrefix(p, root)
		if p == "" {
			p = "/"
		}
		st, ok := stats[p]
		if !ok {
			return FSStat{}, os.ErrNotExist
		}
		return st, nil
	}}
	disks, err := s.Disks(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []infoproto.Disk{
		{Name: "/", Size: 4096000, Free: 2048000, FSType: "ext4", Devices: []string{"scsi0:1"}},
		{Name: "/boot/efi", Size: 51200, Free: 25600, FSType: "vfat", Devices: []string{"nvme0:0"}},
		{Name: "/srv/data dir", Size: 40960, Free: 40960, FSType: "xfs", Devices: []string{"scsi0:2"}},
		{Name: "/home", Size: 4096000, Free: 2048000, FSType: "ext4", Devices: []string{"scsi0:1"}},
	}
	if !reflect.DeepEqual(disks, want) {
		t.Fatalf("disks:\n%+v\nwant\n%+v", disks, want)
	}
	disks, _ = s.Disks(&Config{DiskNoDevices: true})
	if disks[0].Devices != nil {
		t.Fatal("diskinfo-report-device=false")
	}
}
