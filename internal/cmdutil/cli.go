package cmdutil

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/govmtools/govmtools/internal/version"
)

// ExitUsage is the exit code for bad usage (a bad flag, a missing
// argument), as for every govmtools binary.
const ExitUsage = 2

// CLI is one binary's command line under the convention every govmtools
// binary follows:
//
//   - -h, --help print the usage once, to stdout, and exit 0;
//   - --version prints VersionLine and exits 0;
//   - bad usage prints one line saying what is wrong and a hint naming
//     --help, to stderr, and exits ExitUsage.
//
// The flag package's own messages are silenced: CLI reports each error
// once.
type CLI struct {
	// Name is the binary's name, the prefix of its error lines.
	Name string
	// Usage is printed by --help before the flags: the synopsis lines
	// ("usage: NAME ...") and, if wanted, a paragraph.
	Usage string
	// VersionDetail is appended to the --version line (", ..."), if set.
	VersionDetail string
	// Flags is the binary's flag set; define flags on it before Parse.
	Flags *flag.FlagSet

	Stdout, Stderr io.Writer

	version bool
}

// NewCLI returns a CLI with --version defined.
func NewCLI(name, usage string, stdout, stderr io.Writer) *CLI {
	c := &CLI{Name: name, Usage: usage, Stdout: stdout, Stderr: stderr, Flags: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.Flags.SetOutput(io.Discard)
	c.Flags.Usage = func() {}
	c.Flags.BoolVar(&c.version, "version", false, "print the version and exit")
	return c
}

// VersionAlias makes -NAME a synonym of --version (vmtoolsd's -v).
func (c *CLI) VersionAlias(name string) {
	c.Flags.BoolVar(&c.version, name, false, "same as --version")
}

// Parse parses args. When the binary should stop here (help, version, a
// bad flag) it has printed what it must and exit is true, with the exit
// code.
func (c *CLI) Parse(args []string) (code int, exit bool) {
	err := c.Flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.PrintUsage(c.Stdout)
		return 0, true
	case err != nil:
		return c.UsageError("%v", err), true
	case c.version:
		fmt.Fprintln(c.Stdout, VersionLine(c.Name, c.VersionDetail))
		return 0, true
	}
	return 0, false
}

// PrintUsage writes the usage text and the flags to w.
func (c *CLI) PrintUsage(w io.Writer) {
	fmt.Fprint(w, strings.TrimRight(c.Usage, "\n")+"\n\nflags:\n")
	c.Flags.SetOutput(w)
	c.Flags.PrintDefaults()
	c.Flags.SetOutput(io.Discard)
}

// UsageError reports bad usage on stderr (one line, then the hint) and
// returns ExitUsage.
func (c *CLI) UsageError(format string, a ...any) int {
	return UsageError(c.Stderr, c.Name, fmt.Sprintf(format, a...))
}

// Fail reports err on stderr as "NAME: err" and returns 1.
func (c *CLI) Fail(err error) int {
	fmt.Fprintf(c.Stderr, "%s: %v\n", c.Name, err)
	return 1
}

// UsageError writes "NAME: msg" and the hint to w and returns ExitUsage,
// for binaries that parse their command line themselves (vmhgfs-fuse).
func UsageError(w io.Writer, name, msg string) int {
	fmt.Fprintf(w, "%s: %s\n%s\n", name, msg, Hint(name))
	return ExitUsage
}

// Hint is the line that follows a usage error.
func Hint(name string) string { return "Run '" + name + " --help' for usage." }

// VersionLine is what --version prints: "NAME (govmtools) VERSION", then
// ", detail" if detail is set. VERSION is the same for every binary of a
// build (internal/version).
func VersionLine(name, detail string) string {
	s := name + " (govmtools) " + version.String()
	if detail != "" {
		s += ", " + detail
	}
	return s
}

// LogLevel is a flag.Value for a slog level given by name (debug, info,
// warn or warning, error), in any case; a wrong name is refused with the
// list of valid ones. IsSet tells whether the flag was given.
type LogLevel struct {
	Level slog.Level
	IsSet bool
}

// LevelNames lists the names LogLevel accepts.
const LevelNames = "debug, info, warn, error"

func (l *LogLevel) String() string {
	if l == nil || !l.IsSet {
		return ""
	}
	return strings.ToLower(l.Level.String())
}

// Set parses a level name.
func (l *LogLevel) Set(s string) error {
	lv, err := ParseLevel(s)
	if err != nil {
		return err
	}
	l.Level, l.IsSet = lv, true
	return nil
}

// ParseLevel parses a slog level name; the error lists the valid names.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want %s)", s, LevelNames)
}
