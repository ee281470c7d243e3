package cmdutil

import (
	"bytes"
	"flag"
	"log/slog"
	"strings"
	"testing"
)

func newTestCLI() (*CLI, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	c := NewCLI("tool", "usage: tool [--n N]", &out, &errOut)
	c.Flags.Int("n", 1, "a number")
	return c, &out, &errOut
}

func TestCLIConvention(t *testing.T) {
	for _, help := range []string{"-h", "--help", "-help"} {
		c, out, errOut := newTestCLI()
		if code, exit := c.Parse([]string{help}); !exit || code != 0 {
			t.Fatalf("%s: exit=%v code=%d", help, exit, code)
		}
		if strings.Count(out.String(), "usage: tool") != 1 || !strings.Contains(out.String(), "-n int") || errOut.Len() != 0 {
			t.Fatalf("%s: stdout %q stderr %q", help, out, errOut)
		}
	}
	c, out, errOut := newTestCLI()
	if code, exit := c.Parse([]string{"--bogus"}); !exit || code != ExitUsage {
		t.Fatalf("bad flag: exit=%v code=%d", exit, code)
	}
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if out.Len() != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "tool: ") || !strings.Contains(lines[0], "bogus") || lines[1] != Hint("tool") {
		t.Fatalf("bad flag: stdout %q stderr %q", out, errOut)
	}
	c, out, _ = newTestCLI()
	c.VersionDetail = "extra"
	if code, exit := c.Parse([]string{"--version"}); !exit || code != 0 || out.String() != VersionLine("tool", "extra")+"\n" || !strings.HasSuffix(out.String(), ", extra\n") {
		t.Fatalf("--version: exit=%v code=%d %q", exit, code, out)
	}
	c, _, _ = newTestCLI()
	if _, exit := c.Parse([]string{"--n", "3", "arg"}); exit || c.Flags.Arg(0) != "arg" {
		t.Fatal("a good command line stopped the binary")
	}
}

func TestLogLevel(t *testing.T) {
	var l LogLevel
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	fs.Var(&l, "log-level", "")
	err := fs.Parse([]string{"--log-level", "loud"})
	if err == nil || !strings.Contains(err.Error(), LevelNames) {
		t.Fatalf("--log-level loud: %v", err)
	}
	if err := fs.Parse([]string{"--log-level", "WARNING"}); err != nil || !l.IsSet || l.Level != slog.LevelWarn {
		t.Fatalf("--log-level WARNING: %v %+v", err, l)
	}
}
