package kmsgdump

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppendLogLines(t *testing.T) {
	long := strings.Repeat("a", 2500)
	cases := []struct {
		in   string
		want []string
	}{
		{"one\ntwo\n\nthree\r\n", []string{"one", "two", "three"}},
		{"tab\tkept, nul\x00 bell\a del\x7f", []string{`tab` + "\t" + `kept, nul\x00 bell\x07 del\x7f`}},
		{strings.Repeat("b", 1020), []string{strings.Repeat("b", 1020)}},
		{strings.Repeat("b", 1021), []string{strings.Repeat("b", 1020), "b"}},
		{long, []string{long[:1020], long[1020:2040], long[2040:]}},
		// A 3-byte rune straddling the cut moves to the next piece.
		{strings.Repeat("c", 1019) + "€x", []string{strings.Repeat("c", 1019), "€x"}},
		// An escape straddling the cut moves too.
		{strings.Repeat("d", 1018) + "\x01z", []string{strings.Repeat("d", 1018), `\x01z`}},
	}
	for _, c := range cases {
		var got []string
		for _, l := range AppendLogLines(nil, []byte(c.in)) {
			got = append(got, string(l))
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("AppendLogLines(%.40q...) = %d pieces %.80q, want %d %.80q", c.in, len(got), got, len(c.want), c.want)
		}
	}
}

func FuzzAppendLogLines(f *testing.F) {
	f.Add([]byte("hello\nworld"))
	f.Add([]byte(strings.Repeat("€", 400)))
	f.Add(append(bytes.Repeat([]byte{'x'}, 1019), 0, 1, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines := AppendLogLines(nil, b)
		var joined []byte
		for _, l := range lines {
			if len(l) == 0 || len(l) > MaxLine {
				t.Fatalf("piece of %d bytes", len(l))
			}
			for _, c := range l {
				if (c < ' ' && c != '\t') || c == 0x7f {
					t.Fatalf("control byte %#x shipped", c)
				}
			}
			joined = append(joined, l...)
		}
		// Nothing is lost: the pieces are the sanitized lines, in order.
		var want []byte
		for _, l := range bytes.Split(b, []byte{'\n'}) {
			want = append(want, sanitize(bytes.TrimRight(l, "\r"))...)
		}
		if !bytes.Equal(joined, want) {
			t.Fatalf("pieces do not add up to the text")
		}
		if utf8.Valid(b) && !bytes.ContainsAny(b, "\\") {
			for _, l := range lines {
				if !utf8.Valid(l) {
					t.Fatalf("valid UTF-8 cut inside a rune: %q", l)
				}
			}
		}
	})
}
