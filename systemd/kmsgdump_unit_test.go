package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmtools/govmtools/internal/testutil"
)

// TestKmsgdumpUnit checks vmware-kmsgdump.service with systemd-analyze
// verify (pointing ExecStart at the built binary, which verify requires to
// exist) and checks the properties the design depends on.
func TestKmsgdumpUnit(t *testing.T) {
	unit, err := os.ReadFile("vmware-kmsgdump.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Type=notify", "ExecStart=/usr/bin/vmware-kmsgdump --follow", "DefaultDependencies=no",
		"Before=systemd-pstore.service sysinit.target", "ConditionVirtualization=vmware",
		"StateDirectory=govmtools/kmsgdump", "RequiresMountsFor=/var/lib/govmtools /var/crash",
	} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	if strings.Contains(string(unit), "\nProtectKernelLogs=yes") {
		t.Error("ProtectKernelLogs hides /dev/kmsg")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	testutil.Require(t, err == nil, "systemd-analyze", "apt-get install systemd")
	bin := testutil.Binaries(t)
	dir := t.TempDir()
	text := strings.ReplaceAll(string(unit), "/usr/bin/vmware-kmsgdump", filepath.Join(bin, "vmware-kmsgdump"))
	path := filepath.Join(dir, "vmware-kmsgdump.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
