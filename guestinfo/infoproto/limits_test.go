package infoproto

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestValidateAtLimits: exactly the nicinfo.x limits are accepted, one
// more is refused.
func TestValidateAtLimits(t *testing.T) {
	n := &NicInfo{}
	for range MaxNICs {
		n.NICs = append(n.NICs, NIC{MAC: strings.Repeat("a", MaxMACLen)})
	}
	for i := range MaxRoutes {
		n.Routes = append(n.Routes, Route{Dest: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), PrefixLen: 32})
	}
	if err := n.Validate(); err != nil {
		t.Fatalf("%d NICs, %d routes, %d-byte MACs: %v", MaxNICs, MaxRoutes, MaxMACLen, err)
	}
	more := *n
	more.Routes = append(more.Routes[:MaxRoutes:MaxRoutes], more.Routes[0])
	if err := more.Validate(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d routes: %v", MaxRoutes+1, err)
	}
	n.NICs[3].MAC += "a"
	if err := n.Validate(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a %d-byte MAC: %v", MaxMACLen+1, err)
	}
}

// TestDiskInfoV0SecondEntry: entries after the first are decoded from
// their own offsets.
func TestDiskInfoV0SecondEntry(t *testing.T) {
	in := []Disk{{Free: 1, Size: 2, Name: "/"}, {Free: 3, Size: 4, Name: "/home"}, {Free: 5, Size: 6, Name: "/var"}}
	got, err := DecodeDiskInfoV0(EncodeDiskInfoV0(in))
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	for i := range in {
		if got[i].Free != in[i].Free || got[i].Size != in[i].Size || got[i].Name != in[i].Name {
			t.Errorf("disk %d: %+v, want %+v", i, got[i], in[i])
		}
	}
}

// TestTextLeadingNUL: a payload that starts with its terminator is empty.
func TestTextLeadingNUL(t *testing.T) {
	if got := Text([]byte("\x00junk")); got != "" {
		t.Errorf("Text = %q, want empty", got)
	}
	if got := Text([]byte("ab\x00c")); got != "ab" {
		t.Errorf("Text = %q, want ab", got)
	}
}
