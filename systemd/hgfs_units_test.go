package systemd

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// parseUnit reads a unit file into section -> key -> values.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func one(t *testing.T, u map[string]map[string][]string, section, key, want string) {
	t.Helper()
	if got := u[section][key]; len(got) != 1 || got[0] != want {
		t.Errorf("[%s] %s = %q, want %q", section, key, got, want)
	}
}

func TestHGFSMountUnits(t *testing.T) {
	m := parseUnit(t, "mnt-hgfs.mount")
	// systemd requires a mount unit's name to match Where=.
	one(t, m, "Mount", "Where", "/mnt/hgfs")
	one(t, m, "Mount", "What", ".host:/")
	one(t, m, "Mount", "Type", "fuse.vmhgfs-fuse")
	one(t, m, "Unit", "ConditionVirtualization", "vmware")
	o := m["Mount"]["Options"]
	if len(o) != 1 {
		t.Fatalf("Options %q: want one line", o)
	}
	// Every local user may reach /mnt/hgfs, so the kernel must check the
	// modes: default_permissions, and never the unsafe opt-out.
	opts := strings.Split(o[0], ",")
	if !slices.Contains(opts, "allow_other") || !slices.Contains(opts, "default_permissions") ||
		slices.ContainsFunc(opts, func(s string) bool { return strings.HasPrefix(s, "unsafe") }) {
		t.Errorf("Options %q: want allow_other and default_permissions, no unsafe option", o)
	}
	a := parseUnit(t, "mnt-hgfs.automount")
	one(t, a, "Automount", "Where", "/mnt/hgfs")
	one(t, a, "Unit", "ConditionVirtualization", "vmware")
	one(t, a, "Install", "WantedBy", "multi-user.target")
}
