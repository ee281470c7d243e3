package toolboxcmd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
)

// keyFile is tools.conf as lines, so that an edit changes only the lines
// of the key it sets or removes: comments, blank lines, the order and the
// spelling of every other line stay as they were. (open-vm-tools rewrites
// the whole file through GLib, which keeps comments but respaces every
// key; docs/toolbox-cmd.md.)
type keyFile struct {
	lines  []string
	exists bool
}

// confPath is tools.conf.
func (r *run) confPath() string { return filepath.Join(r.ConfDir, "tools.conf") }

// loadConf reads tools.conf; a missing file is an empty one that does
// not exist.
func (r *run) loadConf() (*keyFile, error) {
	data, err := os.ReadFile(r.confPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &keyFile{}, nil
	}
	if err != nil {
		return &keyFile{}, err
	}
	s := strings.TrimSuffix(string(data), "\n")
	k := &keyFile{exists: true}
	if s != "" || len(data) > 0 {
		k.lines = strings.Split(s, "\n")
	}
	return k, nil
}

// parsed returns the file as vmtoolsd reads it.
func (k *keyFile) parsed() *toolsconf.File {
	f, _ := toolsconf.Parse([]byte(strings.Join(k.lines, "\n")))
	return f
}

// lookup is a key as the tools read it: from tools.conf, else, when
// [globalconf] enabled is true, from tools-global.conf.
func (r *run) lookup(k *keyFile, group, key string) (string, bool) {
	f := k.parsed()
	if v, ok := f.Lookup(group, key); ok {
		return v, true
	}
	if !f.Bool("globalconf", "enabled", false) {
		return "", false
	}
	data, err := os.ReadFile(filepath.Join(r.ConfDir, "tools-global.conf"))
	if err != nil {
		return "", false
	}
	g, _ := toolsconf.Parse(data)
	return g.Lookup(group, key)
}

// groupOf returns the group a line opens, as toolsconf.Parse reads it:
// ok is false for lines that are not group headers, and a malformed
// header opens the group "" (its keys belong to no group).
func groupOf(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || t[0] != '[' {
		return "", false
	}
	end := strings.IndexByte(t, ']')
	if end < 0 || strings.TrimSpace(t[end+1:]) != "" || end == 1 {
		return "", true
	}
	return t[1:end], true
}

// keyOf returns the key of a key=value line.
func keyOf(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '#' || t[0] == ';' || t[0] == '[' {
		return "", false
	}
	k, _, ok := strings.Cut(t, "=")
	return strings.TrimSpace(k), ok
}

// escape is GLib's g_key_file_set_string escaping: backslash, newline,
// tab, carriage return, and a leading space; a trailing space too, which
// a reader would otherwise trim.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteString(`\s`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// set sets group.key: the last line that sets it is rewritten in place
// and any earlier duplicates dropped; a new key goes after the last key
// of the group's last section, a new group at the end.
func (k *keyFile) set(group, key, value string) {
	line := key + "=" + escape(value)
	cur, last, lastKey := "", -1, -1
	var dups []int
	for i, l := range k.lines {
		if g, ok := groupOf(l); ok {
			cur = g
			if g == group {
				lastKey = i
			}
			continue
		}
		if kk, ok := keyOf(l); ok && cur == group {
			lastKey = i
			if kk == key {
				if last >= 0 {
					dups = append(dups, last)
				}
				last = i
			}
		}
	}
	switch {
	case last >= 0:
		k.lines[last] = line
		k.drop(dups)
	case lastKey >= 0:
		k.lines = append(k.lines[:lastKey+1], append([]string{line}, k.lines[lastKey+1:]...)...)
	default:
		if n := len(k.lines); n > 0 && strings.TrimSpace(k.lines[n-1]) != "" {
			k.lines = append(k.lines, "")
		}
		k.lines = append(k.lines, "["+group+"]", line)
	}
}

// remove removes every line setting group.key.
func (k *keyFile) remove(group, key string) {
	cur := ""
	var del []int
	for i, l := range k.lines {
		if g, ok := groupOf(l); ok {
			cur = g
			continue
		}
		if kk, ok := keyOf(l); ok && cur == group && kk == key {
			del = append(del, i)
		}
	}
	k.drop(del)
}

func (k *keyFile) drop(idx []int) {
	for j := len(idx) - 1; j >= 0; j-- {
		i := idx[j]
		k.lines = append(k.lines[:i], k.lines[i+1:]...)
	}
}

// writeConf replaces tools.conf with k: a new file in the same directory,
// with the old one's mode (0644 for a new one), renamed over it, so that
// vmtoolsd, which watches the directory, never reads half a file.
func (r *run) writeConf(k *keyFile) error {
	path := r.confPath()
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	data := strings.Join(k.lines, "\n")
	if data != "" {
		data += "\n"
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tools.conf.")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// strerror is err as C's strerror words it ("No such file or
// directory"), which is what open-vm-tools prints after "Error writing
// config: ".
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// writeConfReport writes k and reports a failure as open-vm-tools does.
func (r *run) writeConfReport(k *keyFile) int {
	if err := r.writeConf(k); err != nil {
		r.printErr("Error writing config: %s\n", strerror(err))
		return ExTempFail
	}
	return ExitOK
}

// config is `config get|set|remove SECTION KEY [VALUE]`.
func (r *run) config() int {
	a := r.args[1:]
	switch {
	case len(a) < 2:
		return r.missing("config section")
	case len(a) < 3:
		return r.missing("config key")
	}
	op, section, key := a[0], a[1], a[2]
	switch op {
	case "set":
		if len(a) < 4 {
			return r.missing("config value")
		}
		k, _ := r.loadConf()
		k.set(section, key, a[3])
		return r.writeConfReport(k)
	case "get":
		k, err := r.loadConf()
		code := ExitOK
		if !k.exists || err != nil {
			code = ExUnavailable
		}
		if v, ok := r.lookup(k, section, key); ok {
			r.out("[%s] %s = %s\n", section, key, v)
		} else {
			r.out("[%s] %s UNSET\n", section, key)
		}
		return code
	case "remove":
		k, err := r.loadConf()
		if !k.exists || err != nil {
			return ExUnavailable
		}
		k.remove(section, key)
		return r.writeConfReport(k)
	}
	return r.unknown("subcommand", op)
}

// defaultLogLevel is what `logging level get` prints for an unset level
// (VMTOOLS_LOGGING_LEVEL_DEFAULT of a release build).
const defaultLogLevel = "message"

// logging is `logging level get|set SERVICE [LEVEL]`.
func (r *run) logging() int {
	a := r.args[1:]
	switch {
	case len(a) < 2:
		return r.missing("logging operation")
	case len(a) < 3:
		return r.missing("logging servicename")
	}
	if a[0] != "level" {
		return r.unknown("subcommand", a[0])
	}
	name := a[2] + ".level"
	switch a[1] {
	case "set":
		if len(a) < 4 {
			return r.missing("logging level")
		}
		switch a[3] {
		case "error", "critical", "warning", "message", "info", "debug":
		default:
			return r.unknown("logging level", a[3])
		}
		k, _ := r.loadConf()
		k.set("logging", name, a[3])
		return r.writeConfReport(k)
	case "get":
		k, _ := r.loadConf()
		v, ok := r.lookup(k, "logging", name)
		if !ok {
			v = defaultLogLevel
		}
		r.out("%s = %s\n", name, v)
		return ExitOK
	}
	return r.unknown("subcommand", a[1])
}

// scriptKeys are the [powerops] keys of the script types.
var scriptKeys = map[string]string{
	"power":    "poweron-script",
	"shutdown": "poweroff-script",
	"resume":   "resume-script",
	"suspend":  "suspend-script",
}

// defaultScript is the script open-vm-tools runs for a [powerops] key.
func defaultScript(key string) string {
	return strings.TrimSuffix(key, "-script") + "-vm-default"
}

// script is `script TYPE default|current|set PATH|enable|disable`.
func (r *run) script() int {
	a := r.args[1:]
	if len(a) < 1 {
		return r.missing("script type")
	}
	key, ok := scriptKeys[a[0]]
	if !ok {
		return r.unknown("script type", a[0])
	}
	if len(a) < 2 {
		return r.missing("subcommand")
	}
	switch a[1] {
	case "default", "current":
		return r.scriptShow(a[0], key, a[1] == "current")
	case "set":
		if len(a) < 3 {
			return r.missing("script path")
		}
		if _, err := os.Stat(a[2]); err != nil {
			r.printErr("%s doesn't exist.\n", a[2])
			return ExOSFile
		}
		return r.scriptWrite(key, a[2])
	case "enable":
		return r.scriptWrite(key, defaultScript(key))
	case "disable":
		return r.scriptWrite(key, "")
	}
	return r.unknown("subcommand", a[1])
}

func (r *run) scriptShow(typ, key string, current bool) int {
	k, _ := r.loadConf()
	entry := defaultScript(key)
	if current {
		if v, ok := r.lookup(k, "powerops", key); ok {
			entry = v
		}
	}
	if entry == "" {
		r.printErr("No script for operation %s.\n", typ)
		return ExTempFail
	}
	if !filepath.IsAbs(entry) {
		if len(entry) >= 2 && entry[0] == '"' && entry[len(entry)-1] == '"' {
			entry = entry[1 : len(entry)-1]
		}
		entry = r.ConfDir + "/" + entry
	}
	r.out("%s\n", entry)
	return ExitOK
}

func (r *run) scriptWrite(key, value string) int {
	k, _ := r.loadConf()
	k.set("powerops", key, value)
	return r.writeConfReport(k)
}
