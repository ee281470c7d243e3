// Package toolsconf owns tools.conf, open-vm-tools' configuration file
// (/etc/vmware-tools/tools.conf, a GLib key file: [group] headers,
// key=value lines, # and ; comments): parsing it forgivingly, checking it
// against the keys the daemons honour, and watching it for changes.
//
// Nothing in tools.conf is ever fatal to the daemon. An unknown key in a
// group we honour, or a value of the wrong kind, is reported as a Problem
// and the key then reads as its default. A line that is not a key file at
// all (a syntax error) makes the whole file unusable: Watcher then keeps
// the configuration it had (the defaults at start-up), so a typo can never
// apply half a file. A file anyone but root could change is refused the
// same way (see Trusted). Watcher logs every problem on every load that
// meets it. Groups nobody registered (open-vm-tools features govmtools
// does not implement) are ignored quietly.
package toolsconf

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultDir is where open-vm-tools keeps tools.conf and the power scripts.
const DefaultDir = "/etc/vmware-tools"

// DefaultPath is the default tools.conf.
const DefaultPath = DefaultDir + "/tools.conf"

// File is one parsed tools.conf. The zero value and nil are an empty file.
type File struct {
	groups map[string]map[string]string
}

// Problem is something wrong in tools.conf: where and what.
type Problem struct {
	Line  int // 0 when not tied to a line
	Group string
	Key   string
	Msg   string
	// Syntax marks a line that is not a key file line: the file as a
	// whole is then not applied.
	Syntax bool
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Group != "" {
		fmt.Fprintf(&b, "[%s] ", p.Group)
	}
	if p.Key != "" {
		fmt.Fprintf(&b, "%s: ", p.Key)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Parse reads a key file. It never fails: lines it cannot read are
// reported (as Syntax problems) and skipped. A later duplicate key wins, as in GLib.
func Parse(data []byte) (*File, []Problem) {
	f := &File{groups: map[string]map[string]string{}}
	var problems []Problem
	group := ""
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		switch {
		case line == "", line[0] == '#', line[0] == ';':
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" || end == 1 {
				problems = append(problems, Problem{Line: n, Msg: fmt.Sprintf("malformed group header %q", line), Syntax: true})
				group = "" // keys until the next good header are ignored
				continue
			}
			group = line[1:end]
			if f.groups[group] == nil {
				f.groups[group] = map[string]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			problems = append(problems, Problem{Line: n, Group: group, Msg: fmt.Sprintf("not a key=value line: %q", line), Syntax: true})
			continue
		}
		if group == "" {
			problems = append(problems, Problem{Line: n, Key: key, Msg: "key outside any [group]", Syntax: true})
			continue
		}
		if strings.HasSuffix(key, "]") && strings.Contains(key, "[") {
			continue // a localized variant (key[locale]); never used by the tools
		}
		v, err := unescape(strings.TrimSpace(value))
		if err != nil {
			problems = append(problems, Problem{Line: n, Group: group, Key: key, Msg: err.Error()})
		}
		f.groups[group][key] = v
	}
	return f, problems
}

// unescape applies GLib's key-file escapes: \s \n \t \r \\.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	var err error
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			if c == '\\' {
				err = fmt.Errorf("value ends in a lone backslash")
			}
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			err = fmt.Errorf("unknown escape \\%c (kept as is)", s[i])
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String(), err
}

// Lookup returns the raw value of group.key and whether it is set.
func (f *File) Lookup(group, key string) (string, bool) {
	if f == nil {
		return "", false
	}
	v, ok := f.groups[group][key]
	return v, ok
}

// Groups returns the group names, sorted.
func (f *File) Groups() []string {
	if f == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(f.groups))
}

// Keys returns the keys of group, sorted.
func (f *File) Keys(group string) []string {
	if f == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(f.groups[group]))
}

// Kind is the type of a value.
type Kind int

// Value kinds. Bool accepts true/false/1/0 (GLib also accepts the first
// two only, but open-vm-tools' own example files use both); Int is a
// base-10 integer; Seconds is a non-negative integer number of seconds;
// String and Path take anything.
const (
	String Kind = iota
	Bool
	Int
	Seconds
	Path
)

// Schema lists the keys each honoured group accepts. Groups not in the
// schema are ignored without a warning.
type Schema map[string]map[string]Kind

// Merge adds the groups and keys of o to s (other daemons, such as the
// guest-info reporter, register their keys the same way).
func (s Schema) Merge(o Schema) {
	for g, keys := range o {
		if s[g] == nil {
			s[g] = map[string]Kind{}
		}
		maps.Copy(s[g], keys)
	}
}

// Check reports unknown keys in honoured groups, values of the wrong kind,
// and groups that differ from an honoured one only in letter case (GLib
// group names are case-sensitive, so [timesync] is not [timeSync]).
func (s Schema) Check(f *File) []Problem {
	var problems []Problem
	for _, g := range f.Groups() {
		keys, ok := s[g]
		if !ok {
			for hg := range s {
				if strings.EqualFold(hg, g) {
					problems = append(problems, Problem{Group: g, Msg: fmt.Sprintf("group names are case-sensitive; did you mean [%s]? (ignored)", hg)})
				}
			}
			continue
		}
		for _, k := range f.Keys(g) {
			kind, ok := keys[k]
			if !ok {
				problems = append(problems, Problem{Group: g, Key: k, Msg: "unknown key (ignored)"})
				continue
			}
			v, _ := f.Lookup(g, k)
			if err := checkKind(kind, v); err != nil {
				problems = append(problems, Problem{Group: g, Key: k, Msg: err.Error() + " (the default is used)"})
			}
		}
	}
	slices.SortFunc(problems, func(a, b Problem) int { return strings.Compare(a.String(), b.String()) })
	return problems
}

func checkKind(k Kind, v string) error {
	switch k {
	case Bool:
		if _, ok := parseBool(v); !ok {
			return fmt.Errorf("%q is not a boolean (true or false)", v)
		}
	case Int:
		if _, err := strconv.Atoi(v); err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
	case Seconds:
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return fmt.Errorf("%q is not a number of seconds", v)
		}
	}
	return nil
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}

// Bool returns group.key as a boolean, or def when unset or malformed.
func (f *File) Bool(group, key string, def bool) bool {
	v, ok := f.Lookup(group, key)
	if !ok {
		return def
	}
	b, ok := parseBool(v)
	if !ok {
		return def
	}
	return b
}

// Int returns group.key as an integer, or def when unset or malformed.
func (f *File) Int(group, key string, def int) int {
	v, ok := f.Lookup(group, key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

// Seconds returns group.key as a duration in whole seconds, or def when
// unset or malformed.
func (f *File) Seconds(group, key string, def time.Duration) time.Duration {
	v, ok := f.Lookup(group, key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def
	}
	return time.Duration(n) * time.Second
}

// String returns group.key, or def when unset. An explicitly empty value
// is returned as "" (for [powerops] it means "no script").
func (f *File) String(group, key, def string) string {
	v, ok := f.Lookup(group, key)
	if !ok {
		return def
	}
	return v
}
