package packaging

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The standard library flag package's layout.
const flagHelp = `usage: vmtoolsd [flags]
  -c string
    	tools.conf to read (default CONF-DIR/tools.conf)
  -v	print the version and exit
  -vmx-log
    	also send warnings to vmware.log
    	(rate-limited) (default true)
`

// The two-column layout.
const columnHelp = `usage: vmhgfs-fuse [-o OPTIONS] MOUNTPOINT
       vmhgfs-fuse -e|--enabled

Mounts the host's shared folders.

  -o OPTIONS      comma-separated mount options; may repeat
  -e, --enabled   exit 0 if this kernel can mount it
  --rpc MODE      how to reach the VMX
                  (default $GOVMTOOLS_RPC, then auto)

SIGUSR1 logs the round trips.
`

func TestParseHelp(t *testing.T) {
	h := ParseHelp(flagHelp)
	want := []Option{
		{Names: []string{"-c"}, Arg: "string", Desc: "tools.conf to read (default CONF-DIR/tools.conf)"},
		{Names: []string{"-v"}, Desc: "print the version and exit"},
		{Names: []string{"-vmx-log"}, Desc: "also send warnings to vmware.log (rate-limited) (default true)"},
	}
	if !reflect.DeepEqual(h.Options, want) || !reflect.DeepEqual(h.Usage, []string{"vmtoolsd [flags]"}) || len(h.Text) != 0 {
		t.Fatalf("flag layout: %#v", h)
	}
	if w := h.Words(); !reflect.DeepEqual(w, []string{"--vmx-log", "-c", "-v"}) {
		t.Errorf("words %q", w)
	}

	h = ParseHelp(columnHelp)
	want = []Option{
		{Names: []string{"-o"}, Arg: "OPTIONS", Desc: "comma-separated mount options; may repeat"},
		{Names: []string{"-e", "--enabled"}, Desc: "exit 0 if this kernel can mount it"},
		{Names: []string{"--rpc"}, Arg: "MODE", Desc: "how to reach the VMX (default $GOVMTOOLS_RPC, then auto)"},
	}
	if !reflect.DeepEqual(h.Options, want) {
		t.Fatalf("column layout options: %#v", h.Options)
	}
	if !reflect.DeepEqual(h.Usage, []string{"vmhgfs-fuse [-o OPTIONS] MOUNTPOINT", "vmhgfs-fuse -e|--enabled"}) {
		t.Errorf("usage %q", h.Usage)
	}
	if !reflect.DeepEqual(h.Text, []string{"Mounts the host's shared folders.", "SIGUSR1 logs the round trips."}) {
		t.Errorf("text %q", h.Text)
	}
}

func TestManPageAndCompletion(t *testing.T) {
	h := ParseHelp(flagHelp)
	doc := "Command vmtoolsd is the tools service.\n\nIt answers.\n\n\tvmtoolsd -v\n"
	m := string(ManPage("vmtoolsd", "1.2.3", time.Unix(0, 0), doc, h, []string{"vmware-rpctool"}))
	for _, want := range []string{
		`.TH VMTOOLSD 1 "1970-01-01" "govmtools 1.2.3"`,
		".SH NAME\nvmtoolsd \\- the tools service\n",
		".TP\n\\fB\\-c\\fR \\fIstring\\fR\ntools.conf to read",
		".nf\nvmtoolsd \\-v\n.fi",
		`\fBvmware\-rpctool\fR(1)`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("man page lacks %q:\n%s", want, m)
		}
	}
	c := string(Completion("vmware-rpctool", h))
	for _, want := range []string{"complete -o filenames -F _govmtools_vmware_rpctool vmware-rpctool", "compgen -W '--vmx-log -c -v'", "\t-c)\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("completion lacks %q:\n%s", want, c)
		}
	}
}

func TestOpenVMToolsUnit(t *testing.T) {
	in := "# govmtools vmtoolsd: x\n[Unit]\nConflicts=shutdown.target open-vm-tools.service\n\n[Install]\nWantedBy=multi-user.target\n"
	out, err := OpenVMToolsUnit([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); strings.Contains(s, "open-vm-tools.service\n\n") || !strings.Contains(s, "\nConflicts=shutdown.target\n") || !strings.HasSuffix(s, "WantedBy=multi-user.target\nAlias=vmtoolsd.service\n") {
		t.Fatalf("%s", s)
	}
	if _, err := OpenVMToolsUnit([]byte("[Unit]\n")); err == nil {
		t.Fatal("a unit without the lines to rewrite was accepted")
	}
}

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"0.1.0-dev.144+g6c3f2ac": "0.1.0~dev.144+g6c3f2ac",
		"v1.2.3":                 "1.2.3",
		"1.2.3+4.gabc":           "1.2.3+4.gabc",
	} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
