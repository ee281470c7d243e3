package hgfsd

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ShareSpec is one shared folder: --share NAME=DIR[,ro].
type ShareSpec struct {
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	ReadOnly bool   `json:"readOnly"`
}

// ParseShare parses NAME=DIR[,ro] (also ",rw"). The name is one path
// component; the directory is made absolute.
func ParseShare(s string) (ShareSpec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return ShareSpec{}, fmt.Errorf("share %q: want NAME=DIR[,ro]", s)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return ShareSpec{}, fmt.Errorf("share %q: the name must be one path component", s)
	}
	spec := ShareSpec{Name: name}
	dir := rest
	for {
		i := strings.LastIndexByte(dir, ',')
		if i < 0 {
			break
		}
		switch dir[i+1:] {
		case "ro":
			spec.ReadOnly = true
		case "rw":
		default:
			return ShareSpec{}, fmt.Errorf("share %q: unknown option %q (want ro or rw)", s, dir[i+1:])
		}
		dir = dir[:i]
	}
	if dir == "" {
		return ShareSpec{}, fmt.Errorf("share %q: no directory", s)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ShareSpec{}, fmt.Errorf("share %q: %w", s, err)
	}
	spec.Dir = abs
	return spec, nil
}

// ShareFlag is a repeatable --share flag (flag.Value), shared by
// `vmxsim serve` and `vmxsim run`.
type ShareFlag []ShareSpec

func (f *ShareFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for _, s := range *f {
		v := s.Name + "=" + s.Dir
		if s.ReadOnly {
			v += ",ro"
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// Set adds one share; a name given twice is an error.
func (f *ShareFlag) Set(v string) error {
	s, err := ParseShare(v)
	if err != nil {
		return err
	}
	for _, o := range *f {
		if o.Name == s.Name {
			return errors.New("share " + s.Name + " given twice")
		}
	}
	*f = append(*f, s)
	return nil
}

// ShareFlagUsage is the help text of --share.
const ShareFlagUsage = "shared folder NAME=DIR[,ro] served over HGFS (repeatable)"
