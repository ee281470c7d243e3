package toolsconf

import (
	"testing"
	"time"
)

// TestUnescapeLoneBackslash: only a backslash at the very end is an
// error; ordinary values are not.
func TestUnescapeLoneBackslash(t *testing.T) {
	if _, err := unescape(`a\`); err == nil {
		t.Error(`"a\" : no error`)
	}
	if v, err := unescape(`a\\b`); err != nil || v != `a\b` {
		t.Errorf(`"a\\b": %q %v`, v, err)
	}
	if v, err := unescape(`ab`); err != nil || v != "ab" {
		t.Errorf(`"ab": %q %v`, v, err)
	}
}

// TestSecondsEdges: 0 seconds is a valid value, negative and non-numbers
// are not, both when checked and when read.
func TestSecondsEdges(t *testing.T) {
	for v, ok := range map[string]bool{"0": true, "5": true, "-1": false, "x": false} {
		if err := checkKind(Seconds, v); (err == nil) != ok {
			t.Errorf("checkKind(Seconds, %q) = %v", v, err)
		}
		f, _ := Parse([]byte("[g]\nk=" + v + "\n"))
		want := 7 * time.Second
		if ok {
			want = map[string]time.Duration{"0": 0, "5": 5 * time.Second}[v]
		}
		if got := f.Seconds("g", "k", 7*time.Second); got != want {
			t.Errorf("Seconds of %q = %v, want %v", v, got, want)
		}
	}
}
