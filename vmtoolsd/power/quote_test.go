package power

import "testing"

// TestScriptQuotes: a configured script in double or single quotes is
// the path inside them; unbalanced or lone quotes are kept.
func TestScriptQuotes(t *testing.T) {
	for in, want := range map[string]string{
		`"/opt/a b.sh"`: "/opt/a b.sh",
		`'/opt/a b.sh'`: "/opt/a b.sh",
		`'/opt/x.sh"`:   `/c/'/opt/x.sh"`,
		`"/opt/x.sh'`:   `/c/"/opt/x.sh'`,
		`/opt/'x'`:      "/opt/'x'",
		`'`:             "/c/'",
		` /opt/y.sh `:   "/opt/y.sh",
	} {
		o := &Ops{ConfDir: "/c", Scripts: func(string) (string, bool) { return in, true }}
		if got := o.script(transitions[0]); got != want {
			t.Errorf("script %q: %q, want %q", in, got, want)
		}
	}
}
