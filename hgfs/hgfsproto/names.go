package hgfsproto

import (
	"bytes"
	"encoding/binary"
	"strings"
	"time"
	"unicode/utf8"
)

// CPName converts a slash-separated guest path relative to the HGFS root
// (the first component is the share) into a cross-platform name:
// components joined by NUL, with no leading, trailing or doubled
// separators, each unescaped (Unescape) to the name the host knows, as
// open-vm-tools' Linux client does. A guest-visible "a!%b" is the host's
// "a/b": one component with a slash in it, never two. The root ("" or
// "/") is the empty name.
func CPName(path string) []byte {
	var b []byte
	for comp := range strings.SplitSeq(path, "/") {
		if comp == "" {
			continue
		}
		if len(b) > 0 {
			b = append(b, 0)
		}
		b = append(b, Unescape(comp)...)
	}
	return b
}

// ParseCPName splits a CP name into its components by the host's rules
// and returns each as a POSIX host stores it (Escape: a "/" inside a
// component becomes "!%", as open-vm-tools' server does): no empty
// components, no trailing NUL inside the counted length, no "." or ".."
// components, valid UTF-8. The empty name is the root and yields no
// components.
func ParseCPName(name []byte) ([]string, error) {
	if len(name) == 0 {
		return nil, nil
	}
	var comps []string
	for comp := range bytes.SplitSeq(name, []byte{0}) {
		switch {
		case len(comp) == 0:
			return nil, malformed("empty component in name %q", name)
		case string(comp) == "." || string(comp) == "..":
			return nil, malformed("%q component in name", comp)
		case !utf8.Valid(comp):
			return nil, malformed("name is not UTF-8")
		}
		comps = append(comps, Escape(string(comp)))
	}
	return comps, nil
}

// SymlinkTarget converts a symlink target to its CPNameLite form: every
// "/" becomes NUL and nothing else changes (relative targets, "..", a
// leading "/" are all kept).
func SymlinkTarget(target string) []byte {
	return bytes.ReplaceAll([]byte(target), []byte{'/'}, []byte{0})
}

// SymlinkTargetString converts a CPNameLite target back to a path.
func SymlinkTargetString(b []byte) string {
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{'/'}))
}

// Escaping (open-vm-tools' lib/hgfs/hgfsEscape.c, for a Linux side):
// names travel unescaped; each side escapes what it cannot store. On
// Linux only "/" is illegal in a name: it is shown as the substitute "!"
// followed by the escape character "%". A "%" that already follows "!",
// or follows "]" that follows "!" or "]", would read as part of such a
// sequence, so it is protected by a "]" inserted before it.
const (
	escSubstitute = '!'
	escChar       = '%'
	escProtect    = ']'
)

// isEscSeq reports whether b[i] is the escape character of an escape
// sequence: "%" after "!", or after "]" that follows "!" or "]".
func isEscSeq(b []byte, i int) bool {
	if b[i] != escChar || i == 0 {
		return false
	}
	if b[i-1] == escProtect && i > 1 && (b[i-2] == escProtect || b[i-2] == escSubstitute) {
		return true
	}
	return b[i-1] == escSubstitute
}

// Escape turns a name as the host knows it (one component; it may hold
// "/") into one a Linux directory can hold (HgfsEscape_Do): the guest
// client applies it to directory entries, a Linux host to the names it
// receives.
func Escape(name string) string {
	if strings.IndexByte(name, '/') < 0 && strings.IndexByte(name, escChar) < 0 {
		return name
	}
	in := []byte(name)
	out := make([]byte, 0, len(in)+4)
	for i, c := range in {
		switch {
		case c == '/':
			out = append(out, escSubstitute, escChar)
		case isEscSeq(in, i):
			out = append(out, escProtect, escChar)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// Unescape reverses Escape (HgfsEscape_Undo): "!%" becomes "/", and a
// protecting "]" before "%" is dropped. It is applied to what the guest
// names (by the client) and to what a Linux host lists (by the server).
func Unescape(name string) string {
	i := strings.IndexByte(name, escChar)
	if i < 0 {
		return name
	}
	b := []byte(name)
	for i >= 0 && i < len(b) {
		if isEscSeq(b, i) {
			if b[i-1] == escSubstitute {
				b[i-1] = '/'
			} else {
				b[i-1] = escChar
			}
			b = append(b[:i], b[i+1:]...)
			// The character now at i is looked at next.
		} else {
			i++
		}
		j := bytes.IndexByte(b[i:], escChar)
		if j < 0 {
			break
		}
		i += j
	}
	return string(b)
}

// CanonicalName reports whether a guest-visible name is the escaped form
// of the host name it stands for (Escape(Unescape(name)) == name). Other
// names, such as "]]%" (which reaches the host as "]%", listed back as
// "]%"), would be created under one name and listed under another; the
// client refuses to create them and never finds them.
func CanonicalName(name string) bool {
	if strings.IndexByte(name, escChar) < 0 {
		return true
	}
	return Escape(Unescape(name)) == name
}

// FileName is HgfsFileNameV3: a name (CP form) or a handle.
type FileName struct {
	Name     []byte
	Flags    uint32
	CaseType uint32
	Fid      uint32
}

// fileNameHead is the fixed part of HgfsFileNameV3 before the name.
const fileNameHead = 16

// PathName is a by-name FileName for a CP name, as clients send it.
func PathName(cp []byte) FileName {
	return FileName{Name: cp, CaseType: CaseSensitive, Fid: InvalidHandle}
}

// Append appends the name with its trailing NUL.
func (n FileName) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(n.Name)))
	b = binary.LittleEndian.AppendUint32(b, n.Flags)
	b = binary.LittleEndian.AppendUint32(b, n.CaseType)
	b = binary.LittleEndian.AppendUint32(b, n.Fid)
	b = append(b, n.Name...)
	return append(b, 0)
}

// Size is the encoded size with the trailing NUL.
func (n FileName) Size() int { return fileNameHead + len(n.Name) + 1 }

// DecodeFileName decodes a HgfsFileNameV3 at the start of p and returns
// the bytes after its trailing NUL. Like the host, it requires the byte
// after the name (the C struct's placeholder) to be present.
func DecodeFileName(p []byte) (FileName, []byte, error) {
	if len(p) < fileNameHead+1 {
		return FileName{}, nil, malformed("file name header truncated (%d bytes)", len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-fileNameHead-1) {
		return FileName{}, nil, malformed("file name length %d exceeds the %d bytes left", n, len(p)-fileNameHead-1)
	}
	fn := FileName{
		Flags:    binary.LittleEndian.Uint32(p[4:]),
		CaseType: binary.LittleEndian.Uint32(p[8:]),
		Fid:      binary.LittleEndian.Uint32(p[12:]),
		Name:     p[fileNameHead : fileNameHead+int(n)],
	}
	return fn, p[fileNameHead+int(n)+1:], nil
}

// Windows FILETIME: 100 ns units since 1601-01-01 UTC.
const (
	ntEpochOffset = 116444736000000000 // 1970-01-01 in FILETIME units
	ntPerSecond   = 10000000
)

// NTTime converts t to FILETIME. Times before 1601 become 0.
func NTTime(t time.Time) uint64 {
	sec, nsec := t.Unix(), int64(t.Nanosecond())
	if sec < -ntEpochOffset/ntPerSecond {
		return 0
	}
	return uint64(sec*ntPerSecond + nsec/100 + ntEpochOffset)
}

// TimeFromNT converts FILETIME to a time; values before 1970 clamp to
// the Unix epoch, as the C tools do.
func TimeFromNT(nt uint64) time.Time {
	if nt <= ntEpochOffset {
		return time.Unix(0, 0)
	}
	d := nt - ntEpochOffset
	return time.Unix(int64(d/ntPerSecond), int64(d%ntPerSecond)*100)
}
