package kmsgdump

import (
	"strings"
	"testing"
)

// TestCounterWordLength: a counter field of 80 bytes is accepted, 81 is
// not, and neither is an empty field, "-" or one with a space.
func TestCounterWordLength(t *testing.T) {
	for s, want := range map[string]bool{strings.Repeat("k", 80): true, strings.Repeat("k", 81): false, "": false, "-": false, "a b": false, "boot-1": true} {
		if got := counterWord(s); got != want {
			t.Errorf("counterWord(%d bytes %.8q) = %v, want %v", len(s), s, got, want)
		}
	}
}
