// Package packaging owns govmtools' .deb and .rpm packages, built with
// nfpm as a library (packaging/cmd/mkpkg, `make package`): the static
// binaries of every user command in cmd/ and the one cgo binary,
// vmware-vix-helper (PAM, cross-built with Debian's gcc for arm64), laid out as open-vm-tools lays
// them out (/usr/bin under open-vm-tools' names, open-vm-tools.service
// aliased vmtoolsd.service and the other units, a systemd preset,
// /etc/vmware-tools/tools.conf as a configuration file, the default power
// scripts and scripts/vmware/), man pages and bash completion generated
// from each binary's own --help, the maintainer scripts, and the control
// data that makes the package replace open-vm-tools.
package packaging

import (
	"bytes"
	"context"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers "deb"
	"github.com/goreleaser/nfpm/v2/files"

	_ "github.com/goreleaser/nfpm/v2/rpm" // registers "rpm"
	"github.com/govmtools/govmtools/internal/toolboxcmd"
)

//go:embed data
var data embed.FS

// Name is the package name.
const Name = "govmtools"

// VersionVar is the variable -ldflags -X sets to the version.
const VersionVar = "github.com/govmtools/govmtools/internal/version.version"

// NotShipped are the commands of cmd/ that are development tools, not
// user binaries; every other command is packaged.
var NotShipped = map[string]string{
	"vmxsim": "the VMX simulator, for tests and demos",
}

// Cgo are the shipped commands built with cgo: vmware-vix-helper links
// libpam (vmtoolsd/vix/pamauth). Every other binary is a static
// CGO_ENABLED=0 build. vmtoolsd runs the helper found beside its own
// executable (vmtoolsd/daemon), so it goes to /usr/bin with vmtoolsd.
var Cgo = map[string]bool{"vmware-vix-helper": true}

// CgoCC are the C compilers of the cgo builds, per Go architecture, when
// the build machine is of another one: Debian's cross compilers
// (gcc-aarch64-linux-gnu, gcc-x86-64-linux-gnu), which find the target's
// libpam0g-dev through dpkg multiarch
// (scripts/test-deps.d/48-cross-pam-arm64.sh). A build for the machine's
// own architecture (go env GOHOSTARCH) uses $CC, else gcc.
var CgoCC = map[string]string{"amd64": "x86_64-linux-gnu-gcc", "arm64": "aarch64-linux-gnu-gcc"}

// DebDepends and RPMDepends are the packages' dependencies: fuse3
// (vmhgfs-fuse mounts through fusermount3) and the libraries the cgo
// helper links. The deb's libc6 version is the newest GLIBC_ symbol
// version the helper needs (as dpkg-shlibdeps would find); libpam0g's is
// Debian bookworm's shlibs entry for libpam.so.0.
var (
	DebDepends = []string{"fuse3", "libpam0g (>= 1.5.2)"}
	RPMDepends = []string{"fuse3", "pam"}
)

// Units are the systemd units the package ships (installed names) and
// whether the preset enables them.
var Units = []struct {
	Name, Source string
	Enabled      bool
}{
	{"open-vm-tools.service", "vmtoolsd.service", true},
	{"vmware-kmsgdump.service", "vmware-kmsgdump.service", true},
	{"mnt-hgfs.mount", "mnt-hgfs.mount", false},
	{"mnt-hgfs.automount", "mnt-hgfs.automount", false},
}

// Options configure Build.
type Options struct {
	Root       string   // the module root
	Out        string   // where the packages go (dist)
	Version    string   // the version, as git describe gives it
	Arches     []string // Go architectures: amd64, arm64
	Formats    []string // deb, rpm
	Maintainer string
	MTime      time.Time // file and changelog times (reproducible builds)
	Logger     *slog.Logger
}

// UserBinaries lists the commands under root/cmd that the package ships.
func UserBinaries(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, "cmd"))
	if err != nil {
		return nil, err
	}
	var bins []string
	for _, e := range entries {
		if !e.IsDir() || NotShipped[e.Name()] != "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", e.Name(), "main.go")); err != nil {
			continue
		}
		bins = append(bins, e.Name())
	}
	sort.Strings(bins)
	if len(bins) == 0 {
		return nil, fmt.Errorf("no commands in %s/cmd", root)
	}
	return bins, nil
}

// OpenVMToolsUnit makes open-vm-tools.service from systemd/vmtoolsd.service:
// the same unit under Debian's name, aliased vmtoolsd.service (Photon's
// name), and no longer conflicting with itself.
func OpenVMToolsUnit(unit []byte) ([]byte, error) {
	s := string(unit)
	const conflicts = "\nConflicts=shutdown.target open-vm-tools.service\n"
	if !strings.Contains(s, conflicts) {
		return nil, errors.New("vmtoolsd.service: no Conflicts=shutdown.target open-vm-tools.service line to rewrite")
	}
	s = strings.Replace(s, conflicts, "\nConflicts=shutdown.target\n", 1)
	const install = "\n[Install]\nWantedBy=multi-user.target\n"
	if !strings.HasSuffix(s, install) {
		return nil, errors.New("vmtoolsd.service: [Install] is not the last section with WantedBy=multi-user.target")
	}
	s = strings.Replace(s, "# govmtools vmtoolsd:", "# open-vm-tools.service (alias vmtoolsd.service), from govmtools' vmtoolsd.service.\n# govmtools vmtoolsd:", 1)
	return []byte(s + "Alias=vmtoolsd.service\n"), nil
}

// Build builds the binaries for every architecture and writes the
// packages into o.Out, returning their paths.
func Build(ctx context.Context, o Options) ([]string, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Version == "" {
		return nil, errors.New("packaging: no version")
	}
	if o.MTime.IsZero() {
		o.MTime = time.Now()
	}
	bins, err := UserBinaries(o.Root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.Out, ".work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	// One build per architecture, plus the build machine's (to run
	// --help) if it is not among them.
	arches := slices.Clone(o.Arches)
	if !slices.Contains(arches, runtime.GOARCH) {
		arches = append(arches, runtime.GOARCH)
	}
	for _, arch := range arches {
		if err := buildBinaries(ctx, o, filepath.Join(work, "bin", arch), arch, bins); err != nil {
			return nil, err
		}
	}
	gen := filepath.Join(work, "gen")
	if err := Generate(ctx, o, gen, filepath.Join(work, "bin", runtime.GOARCH), bins); err != nil {
		return nil, err
	}
	var out []string
	for _, arch := range o.Arches {
		for _, format := range o.Formats {
			p, err := pack(o, format, arch, filepath.Join(work, "bin", arch), gen, bins)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", format, arch, err)
			}
			o.Logger.Info("package written", "path", p)
			out = append(out, p)
		}
	}
	return out, nil
}

func buildBinaries(ctx context.Context, o Options, dir, arch string, bins []string) error {
	var static, cgo []string
	for _, b := range bins {
		if Cgo[b] {
			cgo = append(cgo, b)
		} else {
			static = append(static, b)
		}
	}
	// Static binaries: nothing else in govmtools needs cgo (go-fuse,
	// godbus and netlink are pure Go), so they run on any glibc or musl.
	if err := goBuild(ctx, o, dir, arch, static, []string{"CGO_ENABLED=0"}); err != nil {
		return err
	}
	if len(cgo) == 0 {
		return nil
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if host := hostArch(ctx); arch != host {
		cc = CgoCC[arch]
	}
	if _, err := exec.LookPath(cc); cc == "" || err != nil {
		return fmt.Errorf("%s for %s needs cgo and the C compiler %q (%v): on Debian, scripts/test-deps.d/48-cross-pam-arm64.sh installs it and libpam0g-dev:%s", strings.Join(cgo, ", "), arch, cc, err, arch)
	}
	// A position-independent executable with full RELRO: the helper
	// runs as root until it becomes the user.
	return goBuild(ctx, o, dir, arch, cgo, []string{"CGO_ENABLED=1", "CC=" + cc}, "-buildmode=pie")
}

// hostArch is the architecture of the machine the go tool runs on (its
// GOHOSTARCH), which is not runtime.GOARCH when this code itself runs
// emulated.
func hostArch(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOHOSTARCH").Output()
	if a := strings.TrimSpace(string(out)); err == nil && a != "" {
		return a
	}
	return runtime.GOARCH
}

func goBuild(ctx context.Context, o Options, dir, arch string, bins, env []string, flags ...string) error {
	ldflags := "-s -w -X " + VersionVar + "=" + o.Version
	if slices.Contains(env, "CGO_ENABLED=1") {
		ldflags += " -linkmode=external -extldflags=-Wl,-z,relro,-z,now"
	}
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dir + "/"}, flags...)
	for _, b := range bins {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	cmd.Env = append(append(os.Environ(), "GOOS=linux", "GOARCH="+arch), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	o.Logger.Info("building", "arch", arch, "binaries", bins, "env", env)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build (%s, %s): %v\n%s", arch, strings.Join(env, " "), err, buf.String())
	}
	return nil
}

// GlibcVersion is the newest GLIBC_x.y symbol version the ELF file at
// path imports from libc.so.6 ("" if it imports none): the libc6 version
// the package must depend on.
func GlibcVersion(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	syms, err := f.ImportedSymbols()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	best := ""
	for _, s := range syms {
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok || !strings.HasPrefix(s.Library, "libc.so") {
			continue
		}
		if best == "" || versionLess(best, v) {
			best = v
		}
	}
	return best, nil
}

// versionLess compares dotted numeric versions (2.17 < 2.34).
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// helpOf runs bin --help, or bin args (only help: nothing else of a
// binary runs at package time), and returns what it printed.
func helpOf(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if len(args) == 0 {
		args = []string{"--help"}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Args[0] = filepath.Base(bin) // what the help names the program (vmware-toolbox-cmd prints argv[0])
	// GOVMTOOLS_RPC names a simulator that is not there: vmware-toolbox-cmd
	// refuses to run outside a VM, as open-vm-tools' does, except with
	// --rpc unix:DIR; its help never reaches the VMX.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "GOVMTOOLS_RPC=unix:/nonexistent"}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("%s --help: %w", bin, err)
	}
	if buf.Len() == 0 {
		return "", fmt.Errorf("%s --help printed nothing", bin)
	}
	return buf.String(), nil
}

// toolboxHelp completes vmware-toolbox-cmd's help, which is
// open-vm-tools' and lists no options: the options come from
// toolboxcmd.Options, and each command's `help COMMAND` goes under
// COMMANDS.
func toolboxHelp(ctx context.Context, bin string, h Help) (Help, error) {
	for _, o := range toolboxcmd.Options {
		h.Options = append(h.Options, Option{Names: []string{o.Short, o.Long}, Desc: o.Desc})
	}
	for _, c := range toolboxcmd.Commands() {
		if c == "help" {
			continue
		}
		out, err := helpOf(ctx, bin, "help", c)
		if err != nil {
			return h, err
		}
		h.Commands = append(h.Commands, strings.TrimRight(out, "\n"))
	}
	return h, nil
}

// Generate writes into gen the man pages (man/), bash completions
// (completion/), units (units/) and docs (doc/) for bins, running each
// binary in hostBin with --help. packaging/cmd/mkdocs runs it for the
// Photon spec's build.
func Generate(ctx context.Context, o Options, gen, hostBin string, bins []string) error {
	for _, b := range bins {
		out, err := helpOf(ctx, filepath.Join(hostBin, b))
		if err != nil {
			return err
		}
		h := ParseHelp(out)
		if b == "vmware-toolbox-cmd" {
			if h, err = toolboxHelp(ctx, filepath.Join(hostBin, b), h); err != nil {
				return err
			}
		}
		if len(h.Options) == 0 {
			return fmt.Errorf("%s --help lists no options:\n%s", b, out)
		}
		docText, err := PackageDoc(filepath.Join(o.Root, "cmd", b))
		if err != nil {
			return err
		}
		var see []string
		for _, other := range bins {
			if other != b {
				see = append(see, other)
			}
		}
		if err := os.MkdirAll(filepath.Join(gen, "man"), 0o755); err != nil {
			return err
		}
		if err := gzipFile(filepath.Join(gen, "man", b+".1.gz"), ManPage(b, o.Version, o.MTime, docText, h, see)); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(gen, "completion", b), Completion(b, h), 0o644); err != nil {
			return err
		}
	}
	for _, u := range Units {
		src, err := os.ReadFile(filepath.Join(o.Root, "systemd", u.Source))
		if err != nil {
			return err
		}
		if u.Name == "open-vm-tools.service" {
			if src, err = OpenVMToolsUnit(src); err != nil {
				return err
			}
		}
		if err := writeFile(filepath.Join(gen, "units", u.Name), src, 0o644); err != nil {
			return err
		}
	}
	changelog := fmt.Sprintf("%s (%s) unstable; urgency=medium\n\n  * Built from the govmtools source tree; see the git history.\n\n -- %s  %s\n",
		Name, debVersion(o.Version)+"-1", o.Maintainer, o.MTime.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	if err := os.MkdirAll(filepath.Join(gen, "doc"), 0o755); err != nil {
		return err
	}
	if err := gzipFile(filepath.Join(gen, "doc", "changelog.Debian.gz"), []byte(changelog)); err != nil {
		return err
	}
	// The rpm changelog, in the chglog format nfpm reads.
	chglog := fmt.Sprintf("- semver: %s\n  date: %s\n  packager: %q\n  changes:\n    - note: Built from the govmtools source tree; see the git history.\n",
		debVersion(o.Version)+"-1", o.MTime.UTC().Format(time.RFC3339), o.Maintainer)
	if err := writeFile(filepath.Join(gen, "doc", "changelog.yml"), []byte(chglog), 0o644); err != nil {
		return err
	}
	license, err := os.ReadFile(filepath.Join(o.Root, "LICENSE"))
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(gen, "doc", "LICENSE"), license, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(gen, "doc", "copyright"), []byte(copyright), 0o644)
}

const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: govmtools
Source: https://github.com/govmtools/govmtools

Files: *
Copyright: 2026 The govmtools Authors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
`

// debVersion is the version as the deb control file has it (nfpm's
// rendering of a semver prerelease and build metadata).
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	base, meta, _ := strings.Cut(v, "+")
	base, pre, ok := strings.Cut(base, "-")
	if ok {
		base += "~" + pre
	}
	if meta != "" {
		base += "+" + meta
	}
	return base
}

// dataFile extracts an embedded data file into dir and returns its path.
func dataFile(dir, name string) (string, error) {
	b, err := fs.ReadFile(data, "data/"+name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "data", name)
	if err := writeFile(p, b, 0o644); err != nil {
		return "", err
	}
	return p, nil
}

// Layout returns the package contents for format ("deb" or "rpm"), with
// sources in bin (the binaries), gen (generated files) and dataDir (the
// embedded data, extracted).
func Layout(format, bin, gen, dataDir string, bins []string) (files.Contents, error) {
	unitDir := "/usr/lib/systemd/system"
	if format == "deb" {
		// Where Debian bookworm's open-vm-tools has its units: the same
		// path lets dpkg hand the files over (Replaces) instead of an
		// aliased /lib and /usr/lib path that would lose one.
		unitDir = "/lib/systemd/system"
	}
	var c files.Contents
	add := func(src, dst, typ string, mode os.FileMode) {
		c = append(c, &files.Content{Source: src, Destination: dst, Type: typ, FileInfo: &files.ContentFileInfo{Mode: mode}})
	}
	docType, scriptType := "", files.TypeConfigNoReplace
	if format == "rpm" {
		// rpm marks man pages %doc; executables are never %config there
		// (rpmlint: executable-marked-as-config-file), so an upgrade
		// replaces the default scripts: local hooks belong in
		// scripts/vmware/ and scripts/<op>-default.d/.
		docType, scriptType = files.TypeRPMDoc, ""
	}
	for _, b := range bins {
		add(filepath.Join(bin, b), "/usr/bin/"+b, "", 0o755)
		add(filepath.Join(gen, "man", b+".1.gz"), "/usr/share/man/man1/"+b+".1.gz", docType, 0o644)
		add(filepath.Join(gen, "completion", b), "/usr/share/bash-completion/completions/"+b, "", 0o644)
	}
	for _, u := range Units {
		add(filepath.Join(gen, "units", u.Name), unitDir+"/"+u.Name, "", 0o644)
	}
	extract := func(name string) (string, error) { return dataFile(dataDir, name) }
	type df struct {
		name, dst, typ string
		mode           os.FileMode
	}
	list := []df{
		{"80-govmtools.preset", "/usr/lib/systemd/system-preset/80-govmtools.preset", "", 0o644},
		{"tools.conf", "/etc/vmware-tools/tools.conf", files.TypeConfigNoReplace, 0o644},
		{"statechange.subr", "/etc/vmware-tools/statechange.subr", files.TypeConfigNoReplace, 0o644},
		{"scripts/network", "/etc/vmware-tools/scripts/vmware/network", scriptType, 0o755},
	}
	for _, op := range []string{"poweron", "poweroff", "resume", "suspend"} {
		list = append(list, df{"power-vm-default", "/etc/vmware-tools/" + op + "-vm-default", scriptType, 0o755})
	}
	// The PAM service of guest operations (vmware-vix-helper): Debian's
	// stacks in the deb; in the rpm, Linux-PAM's modules directly (RPM
	// distributions share no stack name; see the file).
	if format == "deb" {
		list = append(list, df{"pam.d/vmtoolsd", "/etc/pam.d/vmtoolsd", files.TypeConfigNoReplace, 0o644},
			df{"deb/lintian-overrides", "/usr/share/lintian/overrides/" + Name, "", 0o644})
	} else {
		list = append(list, df{"pam.d/vmtoolsd-rpm", "/etc/pam.d/vmtoolsd", files.TypeConfigNoReplace, 0o644})
	}
	for _, d := range list {
		p, err := extract(d.name)
		if err != nil {
			return nil, err
		}
		add(p, d.dst, d.typ, d.mode)
	}
	// The hooks directories open-vm-tools' default scripts read.
	for _, op := range []string{"poweron", "poweroff", "resume", "suspend"} {
		c = append(c, &files.Content{Destination: "/etc/vmware-tools/scripts/" + op + "-vm-default.d", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755}})
	}
	if format == "deb" {
		add(filepath.Join(gen, "doc", "copyright"), "/usr/share/doc/"+Name+"/copyright", "", 0o644)
		add(filepath.Join(gen, "doc", "changelog.Debian.gz"), "/usr/share/doc/"+Name+"/changelog.Debian.gz", "", 0o644)
	} else {
		add(filepath.Join(gen, "doc", "LICENSE"), "/usr/share/licenses/"+Name+"/LICENSE", files.TypeRPMLicense, 0o644)
	}
	return c, nil
}

func pack(o Options, format, arch, bin, gen string, bins []string) (string, error) {
	dataDir := filepath.Join(gen, format)
	contents, err := Layout(format, bin, gen, dataDir, bins)
	if err != nil {
		return "", err
	}
	script := func(name string) string {
		p, err2 := dataFile(dataDir, format+"/"+name)
		if err2 != nil && err == nil {
			err = err2
		}
		return p
	}
	info := nfpm.Info{
		Name:        Name,
		Arch:        arch,
		Platform:    "linux",
		Version:     o.Version,
		Release:     "1",
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  o.Maintainer,
		Vendor:      "govmtools",
		Homepage:    "https://github.com/govmtools/govmtools",
		License:     "Apache-2.0",
		MTime:       o.MTime,
		Description: description,
		Overridables: nfpm.Overridables{
			Contents:  contents,
			Provides:  []string{"open-vm-tools"},
			Conflicts: []string{"open-vm-tools"},
			// Replaces is Replaces in the deb and Obsoletes in the rpm.
			Replaces: []string{"open-vm-tools"},
			Umask:    0o022,
		},
	}
	switch format {
	case "deb":
		info.Depends = slices.Clone(DebDepends)
		libc := ""
		for _, b := range bins {
			if !Cgo[b] {
				continue
			}
			v, err := GlibcVersion(filepath.Join(bin, b))
			if err != nil {
				return "", err
			}
			if v != "" && (libc == "" || versionLess(libc, v)) {
				libc = v
			}
		}
		if libc != "" {
			info.Depends = append(info.Depends, "libc6 (>= "+libc+")")
		}
		info.Scripts = nfpm.Scripts{PostInstall: script("postinst"), PreRemove: script("prerm"), PostRemove: script("postrm")}
		// deb-systemd-helper and deb-systemd-invoke in the maintainer
		// scripts, as debhelper's packages pre-depend on them.
		info.Deb.Predepends = []string{"init-system-helpers (>= 1.54~)"}
		info.Deb.Compression = "xz"
	case "rpm":
		info.Depends = slices.Clone(RPMDepends)
		info.Scripts = nfpm.Scripts{PostInstall: script("post"), PreRemove: script("preun"), PostRemove: script("postun")}
		info.RPM.Group = "Applications/System"
		info.RPM.Summary = strings.SplitN(description, "\n", 2)[0]
		info.RPM.Compression = "xz"
		info.RPM.Packager = o.Maintainer
		info.RPM.BuildHost = "govmtools"
		info.Changelog = filepath.Join(gen, "doc", "changelog.yml")
	default:
		return "", fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return "", err
	}
	p, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	in := nfpm.WithDefaults(&info)
	name := filepath.Join(o.Out, p.ConventionalFileName(in))
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	in.Target = name
	if err := p.Package(in, f); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	return name, f.Close()
}

const description = `VMware guest tools for Linux, written in Go (replaces open-vm-tools)
govmtools is a drop-in replacement for open-vm-tools on VMware virtual
machines: vmtoolsd (tools status, heartbeat, guest power operations, time
synchronization, guest info, guest operations authenticated with PAM
through vmware-vix-helper), vmhgfs-fuse (shared folders), vmware-rpctool,
vmware-checkvm, vmware-hgfsclient and vmware-kmsgdump (kernel crash records
to the host's vmware.log), under open-vm-tools' names, paths and units.
Its services start only on VMware VMs.`
