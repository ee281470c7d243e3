package infoproto

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// HostinfoDetailedDataHeader layout (native x86 alignment).
const (
	DetailedHeaderVersion = 1   // HOSTINFO_STRUCT_HEADER_VERSION
	MaxOSNameLen          = 128 // MAX_OS_NAME_LEN
	MaxOSFullNameLen      = 512 // MAX_OS_FULLNAME_LEN
	DetailedHeaderSize    = 648
	shortNameOff          = 4
	fullNameOff           = shortNameOff + MaxOSNameLen + 1 // 133
	// MaxDetailedField bounds one key='value' pair (MAX_DETAILED_FIELD_LEN,
	// including the C terminator).
	MaxDetailedField = 1024
)

// OSDetailed is the INFO_OS_DETAILED payload.
type OSDetailed struct {
	Version   uint32
	ShortName string // guest ID, e.g. "vmware-photon-64"
	FullName  string
	Detailed  string // key='value' pairs
}

// EncodeOSDetailed builds the payload: the 648-byte header, the detailed
// string and its NUL. Names longer than their fields are cut, as
// vmtoolsd's Str_Strcpy into the fixed arrays would.
func EncodeOSDetailed(d OSDetailed) []byte {
	b := make([]byte, DetailedHeaderSize, DetailedHeaderSize+len(d.Detailed)+1)
	v := d.Version
	if v == 0 {
		v = DetailedHeaderVersion
	}
	binary.LittleEndian.PutUint32(b, v)
	copy(b[shortNameOff:shortNameOff+MaxOSNameLen], cstr(d.ShortName))
	copy(b[fullNameOff:fullNameOff+MaxOSFullNameLen], cstr(d.FullName))
	b = append(b, cstr(d.Detailed)...)
	return append(b, 0)
}

// cstr cuts s at its first NUL, as C sees it.
func cstr(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// DecodeOSDetailed parses an INFO_OS_DETAILED payload. The name fields must
// be NUL-terminated inside the header; the detailed string ends at its NUL
// (or at the end of the payload when the NUL is missing).
func DecodeOSDetailed(b []byte) (OSDetailed, error) {
	var d OSDetailed
	if len(b) < DetailedHeaderSize {
		return d, malformed("OS detailed data of %d bytes (header is %d)", len(b), DetailedHeaderSize)
	}
	d.Version = binary.LittleEndian.Uint32(b)
	if d.Version != DetailedHeaderVersion {
		return d, malformed("OS detailed header version %d", d.Version)
	}
	var ok bool
	if d.ShortName, ok = cfield(b[shortNameOff:fullNameOff]); !ok {
		return d, malformed("OS short name is not terminated")
	}
	if d.FullName, ok = cfield(b[fullNameOff : fullNameOff+MaxOSFullNameLen+1]); !ok {
		return d, malformed("OS full name is not terminated")
	}
	rest := b[DetailedHeaderSize:]
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	d.Detailed = string(rest)
	return d, nil
}

func cfield(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// Detailed holds the fields of the detailed string, in wire order.
type Detailed struct {
	Architecture      string // "X86" or "Arm"
	Bitness           string // "32" or "64"
	BuildNumber       string // os-release BUILD_ID
	CPEString         string // CPE_NAME
	DistroAddlVersion string // VERSION
	DistroName        string // NAME, default uname -s
	DistroVersion     string // VERSION_ID
	FamilyName        string // uname -s
	KernelVersion     string // uname -r
	PrettyName        string // PRETTY_NAME
}

// fields lists the keys in wire order with their values.
func (d *Detailed) fields() []struct {
	key string
	val *string
} {
	return []struct {
		key string
		val *string
	}{
		{"architecture", &d.Architecture},
		{"bitness", &d.Bitness},
		{"buildNumber", &d.BuildNumber},
		{"cpeString", &d.CPEString},
		{"distroAddlVersion", &d.DistroAddlVersion},
		{"distroName", &d.DistroName},
		{"distroVersion", &d.DistroVersion},
		{"familyName", &d.FamilyName},
		{"kernelVersion", &d.KernelVersion},
		{"prettyName", &d.PrettyName},
	}
}

// String formats d as vmtoolsd does: space-separated key='value' pairs in
// fixed order, empty values left out, ' and \ escaped with a backslash,
// trailing white space trimmed. A pair that would not fit
// MaxDetailedField bytes has its value cut (vmtoolsd drops the whole
// string instead).
func (d Detailed) String() string {
	var sb strings.Builder
	for _, f := range d.fields() {
		v := strings.TrimRight(cstr(*f.val), " \t\n\v\f\r")
		if v == "" {
			continue
		}
		var esc strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\'' || v[i] == '\\' {
				esc.WriteByte('\\')
			}
			esc.WriteByte(v[i])
		}
		e := esc.String()
		room := MaxDetailedField - 1 - len(f.key) - 3
		if len(e) > room {
			e = e[:room]
			// Never end on a lone escape character.
			n := 0
			for i := len(e) - 1; i >= 0 && e[i] == '\\'; i-- {
				n++
			}
			if n%2 == 1 {
				e = e[:len(e)-1]
			}
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(f.key)
		sb.WriteString("='")
		sb.WriteString(e)
		sb.WriteByte('\'')
	}
	return sb.String()
}

// ParseDetailed parses a detailed string into its fields. Unknown keys are
// returned in extra, in order; malformed input is an error.
func ParseDetailed(s string) (d Detailed, extra [][2]string, err error) {
	known := map[string]*string{}
	for _, f := range d.fields() {
		known[f.key] = f.val
	}
	i := 0
	for i < len(s) {
		if s[i] == ' ' {
			i++
			continue
		}
		eq := strings.Index(s[i:], "='")
		if eq <= 0 {
			return d, extra, malformed("detailed data: no key='value' at byte %d", i)
		}
		key := s[i : i+eq]
		if strings.ContainsAny(key, " '\\") {
			return d, extra, malformed("detailed data: bad key %q", key)
		}
		j := i + eq + 2
		var val strings.Builder
		closed := false
		for j < len(s) {
			c := s[j]
			j++
			if c == '\\' && j < len(s) {
				val.WriteByte(s[j])
				j++
				continue
			}
			if c == '\'' {
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return d, extra, malformed("detailed data: unterminated value of %q", key)
		}
		if p, ok := known[key]; ok {
			*p = val.String()
		} else {
			extra = append(extra, [2]string{key, val.String()})
		}
		i = j
	}
	return d, extra, nil
}
