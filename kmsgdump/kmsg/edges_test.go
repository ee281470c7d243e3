package kmsg

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestEscapeEveryByte: every byte survives Escape then Unescape; control
// bytes, DEL (0x7f), bytes above it and the backslash are escaped, with
// hex digits of either case accepted back.
func TestEscapeEveryByte(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if got := Unescape(Escape(all)); !bytes.Equal(got, all) {
		t.Errorf("round trip of every byte: %q", got)
	}
	for c, want := range map[byte]string{0x1f: `\x1f`, ' ': " ", '~': "~", 0x7f: `\x7f`, 0x80: `\x80`, '\\': `\x5c`} {
		if got := string(Escape([]byte{c})); got != want {
			t.Errorf("Escape(%#x) = %q, want %q", c, got, want)
		}
	}
	for in, want := range map[string]string{
		`\x09\x0a\x0A\x0f\x0F\x90\x99\xff\xFF\x00`: "\x09\x0a\x0a\x0f\x0f\x90\x99\xff\xff\x00",
		`\xg0\x0g\x:0\x/0\x@0\xG0\x`:               `\xg0\x0g\x:0\x/0\x@0\xG0\x`,
		`a\x4`:                                     `a\x4`,
		`\y41`:                                     `\y41`,
	} {
		if got := string(Unescape([]byte(in))); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLevelNameEdges: the first and last named levels, and numbers
// outside them.
func TestLevelNameEdges(t *testing.T) {
	for l, want := range map[int]string{0: "emerg", 7: "debug", -1: "-1", 8: "8"} {
		if got := LevelName(l); got != want {
			t.Errorf("LevelName(%d) = %q, want %q", l, got, want)
		}
	}
}

// TestDumpHeaderReasonLetters: reasons made of the edge letters of both
// cases parse; a character just outside them does not.
func TestDumpHeaderReasonLetters(t *testing.T) {
	for _, r := range []string{"A", "Z", "a", "z", "Oops_x-y"} {
		if _, ok := ParseDumpHeader([]byte(r + "#1 Part1")); !ok {
			t.Errorf("reason %q refused", r)
		}
	}
	for _, r := range []string{"@", "[", "`", "{", "A1"} {
		if _, ok := ParseDumpHeader([]byte(r + "#1 Part1")); ok {
			t.Errorf("reason %q accepted", r)
		}
	}
}

// TestTimestampLimit: the largest timestamp that fits a time.Duration
// in microseconds is accepted, one more is refused.
func TestTimestampLimit(t *testing.T) {
	max := uint64(1<<63-1) / uint64(time.Microsecond)
	if _, err := Decode([]byte(fmt.Sprintf("6,1,%d,-;x", max))); err != nil {
		t.Errorf("timestamp %d: %v", max, err)
	}
	if _, err := Decode([]byte(fmt.Sprintf("6,1,%d,-;x", max+1))); err == nil {
		t.Errorf("timestamp %d: no error", max+1)
	}
}
