// Package packaging owns govmtools' .deb and .rpm packages, built with
// nfpm as a library (packaging/cmd/mkpkg, `make package`): the static
// binaries of every user command in cmd/, laid out as open-vm-tools lays
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
	// The packages are static CGO_ENABLED=0 builds for amd64 and arm64;
	// the helper links PAM through cgo, so it needs a C toolchain per
	// architecture. Until the package build has one, the packaged
	// vmtoolsd answers guest operations with VIX_E_FAIL (no helper).
	"vmware-vix-helper": "guest-operations helper: needs a cgo (PAM) build per architecture",
}

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
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X " + VersionVar + "=" + o.Version, "-o", dir + "/"}
	for _, b := range bins {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	// Static binaries: nothing in govmtools needs cgo (go-fuse, godbus
	// and netlink are pure Go), so the packages run on any glibc or musl.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	o.Logger.Info("building", "arch", arch, "binaries", len(bins))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build (%s): %v\n%s", arch, err, buf.String())
	}
	return nil
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
		{"pam.d/vmtoolsd", "/etc/pam.d/vmtoolsd", files.TypeConfigNoReplace, 0o644},
		{"scripts/network", "/etc/vmware-tools/scripts/vmware/network", scriptType, 0o755},
	}
	for _, op := range []string{"poweron", "poweroff", "resume", "suspend"} {
		list = append(list, df{"power-vm-default", "/etc/vmware-tools/" + op + "-vm-default", scriptType, 0o755})
	}
	if format == "deb" {
		list = append(list, df{"deb/lintian-overrides", "/usr/share/lintian/overrides/" + Name, "", 0o644})
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
			Depends:  []string{"fuse3"},
			Umask:    0o022,
		},
	}
	switch format {
	case "deb":
		info.Scripts = nfpm.Scripts{PostInstall: script("postinst"), PreRemove: script("prerm"), PostRemove: script("postrm")}
		// deb-systemd-helper and deb-systemd-invoke in the maintainer
		// scripts, as debhelper's packages pre-depend on them.
		info.Deb.Predepends = []string{"init-system-helpers (>= 1.54~)"}
		info.Deb.Compression = "xz"
	case "rpm":
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
synchronization, guest info), vmhgfs-fuse (shared folders), vmware-rpctool,
vmware-checkvm, vmware-hgfsclient and vmware-kmsgdump (kernel crash records
to the host's vmware.log), under open-vm-tools' names, paths and units.
Its services start only on VMware VMs.`
