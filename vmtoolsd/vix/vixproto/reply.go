package vixproto

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
)

// Reply is the text the guest answers after TCLO's "OK ": decimal err,
// space, decimal additional error, space, payload and one NUL. The
// payload is cut to MaxReplyPayload.
func Reply(err Error, addl uint32, payload []byte) []byte {
	if len(payload) > MaxReplyPayload {
		payload = payload[:MaxReplyPayload]
	}
	out := appendReplyHead(make([]byte, 0, 24+len(payload)), err, addl)
	return append(append(out, payload...), 0)
}

// BinaryReply is the reply to a request with FlagGuestReturnsBinary:
// "<err> <addl> #" and the raw bytes, no NUL.
func BinaryReply(err Error, addl uint32, payload []byte) []byte {
	out := appendReplyHead(make([]byte, 0, 25+len(payload)), err, addl)
	return append(append(out, '#'), payload...)
}

// appendReplyHead appends "<err> <addl> ".
func appendReplyHead(out []byte, err Error, addl uint32) []byte {
	out = strconv.AppendInt(out, int64(err), 10)
	out = append(out, ' ')
	out = strconv.AppendUint(out, uint64(addl), 10)
	return append(out, ' ')
}

// ParseReply splits a guest reply (after "OK ") into the error, the
// additional error and the payload; a text payload loses its NUL and
// anything after it, a binary one ('#' first) its '#'.
func ParseReply(b []byte) (err Error, addl uint32, payload []byte, binary bool, perr error) {
	f1, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return 0, 0, nil, false, ErrInvalidMessageBody
	}
	f2, rest, _ := bytes.Cut(rest, []byte{' '})
	e, err1 := strconv.ParseInt(string(f1), 10, 64)
	// The additional error is errno, printed unsigned by open-vm-tools;
	// accept a signed one too.
	a, err2 := strconv.ParseInt(string(bytes.TrimRight(f2, "\x00")), 10, 64)
	if err1 != nil || err2 != nil || a < -1<<31 || a > 1<<32-1 {
		return 0, 0, nil, false, ErrInvalidMessageBody
	}
	if len(rest) > 0 && rest[0] == '#' {
		return Error(e), uint32(a), rest[1:], true, nil
	}
	if i := bytes.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i]
	}
	return Error(e), uint32(a), rest, false, nil
}

// EscapeXML escapes the six bytes open-vm-tools escapes in result
// strings as '%' and two upper-case hex digits: " % & ' < >.
func EscapeXML(s string) string {
	if !strings.ContainsAny(s, "\"%&'<>") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '%', '&', '\'', '<', '>':
			b.WriteByte('%')
			b.WriteByte("0123456789ABCDEF"[c>>4])
			b.WriteByte("0123456789ABCDEF"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// UnescapeXML reverses EscapeXML (any %XX is decoded; a malformed one is
// kept as it is).
func UnescapeXML(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Tag returns the text between the first <name> and its </name> in s,
// and the rest after it.
func Tag(s, name string) (value, rest string, ok bool) {
	open, closing := "<"+name+">", "</"+name+">"
	i := strings.Index(s, open)
	if i < 0 {
		return "", s, false
	}
	s = s[i+len(open):]
	j := strings.Index(s, closing)
	if j < 0 {
		return "", "", false
	}
	return s[:j], s[j+len(closing):], true
}

// Process is one <proc> entry of a ListProcessesEx result.
type Process struct {
	Cmd, CmdLine, User string
	Pid                uint64
	Start, End         int64
	ExitCode           int32
}

// AppendProcess appends p as open-vm-tools formats it; <cmd> is left out
// when Cmd is empty.
func AppendProcess(b []byte, p *Process) []byte {
	b = append(b, "<proc>"...)
	if p.Cmd != "" {
		b = append(append(append(b, "<cmd>"...), EscapeXML(p.Cmd)...), "</cmd>"...)
	}
	b = append(append(append(b, "<name>"...), EscapeXML(p.CmdLine)...), "</name>"...)
	b = strconv.AppendUint(append(b, "<pid>"...), p.Pid, 10)
	b = append(append(append(b, "</pid><user>"...), EscapeXML(p.User)...), "</user>"...)
	b = strconv.AppendInt(append(b, "<start>"...), p.Start, 10)
	b = strconv.AppendInt(append(b, "</start><eCode>"...), int64(p.ExitCode), 10)
	b = strconv.AppendInt(append(b, "</eCode><eTime>"...), p.End, 10)
	return append(b, "</eTime></proc>"...)
}

// ParseProcesses decodes a ListProcessesEx result (an unchunked one, or
// the data of a chunk after its header).
func ParseProcesses(s string) []Process {
	var out []Process
	for {
		body, rest, ok := Tag(s, "proc")
		if !ok {
			return out
		}
		s = rest
		var p Process
		if v, _, ok := Tag(body, "cmd"); ok {
			p.Cmd = UnescapeXML(v)
		}
		v, _, _ := Tag(body, "name")
		p.CmdLine = UnescapeXML(v)
		v, _, _ = Tag(body, "user")
		p.User = UnescapeXML(v)
		v, _, _ = Tag(body, "pid")
		p.Pid, _ = strconv.ParseUint(v, 10, 64)
		v, _, _ = Tag(body, "start")
		p.Start, _ = strconv.ParseInt(v, 10, 64)
		v, _, _ = Tag(body, "eTime")
		p.End, _ = strconv.ParseInt(v, 10, 64)
		v, _, _ = Tag(body, "eCode")
		e, _ := strconv.ParseInt(v, 10, 32)
		p.ExitCode = int32(e)
		out = append(out, p)
	}
}

// File types of <ft>.
const (
	FileTypeFile    = 0
	FileTypeDir     = 1
	FileTypeSymlink = 2
)

// FileInfo is one <fxi> entry of a ListFiles result (Linux variant).
type FileInfo struct {
	Name          string
	Type          int
	Size          int64
	MTime, ATime  int64
	UID, GID      int64
	Mode          uint32 // full st_mode
	SymlinkTarget string
}

// AppendFileInfo appends f as an <fxi> entry.
func AppendFileInfo(b []byte, f *FileInfo) []byte {
	b = append(append(append(b, "<fxi><Name>"...), EscapeXML(f.Name)...), "</Name>"...)
	b = strconv.AppendInt(append(b, "<ft>"...), int64(f.Type), 10)
	b = strconv.AppendInt(append(b, "</ft><fs>"...), f.Size, 10)
	b = strconv.AppendInt(append(b, "</fs><mt>"...), f.MTime, 10)
	b = strconv.AppendInt(append(b, "</mt><at>"...), f.ATime, 10)
	b = strconv.AppendInt(append(b, "</at><uid>"...), f.UID, 10)
	b = strconv.AppendInt(append(b, "</uid><gid>"...), f.GID, 10)
	b = strconv.AppendUint(append(b, "</gid><perm>"...), uint64(f.Mode), 10)
	b = append(append(append(b, "</perm><slt>"...), EscapeXML(f.SymlinkTarget)...), "</slt></fxi>"...)
	return b
}

// ParseFileInfos decodes <fxi> entries.
func ParseFileInfos(s string) []FileInfo {
	var out []FileInfo
	for {
		body, rest, ok := Tag(s, "fxi")
		if !ok {
			return out
		}
		s = rest
		var f FileInfo
		num := func(tag string) int64 {
			v, _, _ := Tag(body, tag)
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
		v, _, _ := Tag(body, "Name")
		f.Name = UnescapeXML(v)
		f.Type, f.Size, f.MTime, f.ATime = int(num("ft")), num("fs"), num("mt"), num("at")
		f.UID, f.GID, f.Mode = num("uid"), num("gid"), uint32(num("perm"))
		v, _, _ = Tag(body, "slt")
		f.SymlinkTarget = UnescapeXML(v)
		out = append(out, f)
	}
}

// ListFilesResult is a decoded ListFiles reply: truncated ("1 ") and
// the remaining count.
type ListFilesResult struct {
	Truncated bool
	Remaining int64
	Files     []FileInfo
}

// ParseListFiles decodes "<T> <rem>R</rem><fxi>...".
func ParseListFilesResult(s string) ListFilesResult {
	var r ListFilesResult
	if strings.HasPrefix(s, "1 ") {
		r.Truncated = true
	}
	if v, _, ok := Tag(s, "rem"); ok {
		r.Remaining, _ = strconv.ParseInt(v, 10, 64)
	}
	r.Files = ParseFileInfos(s)
	return r
}

// AppendEnv appends one <ev>NAME=VALUE</ev> entry, escaped.
func AppendEnv(b []byte, name, value string) []byte {
	return append(append(append(append(append(b, "<ev>"...), EscapeXML(name)...), '='), EscapeXML(value)...), "</ev>"...)
}

// ParseEnv decodes <ev> entries into NAME=VALUE strings.
func ParseEnv(s string) []string {
	var out []string
	for {
		v, rest, ok := Tag(s, "ev")
		if !ok {
			return out
		}
		s = rest
		out = append(out, UnescapeXML(v))
	}
}

// Property types of a serialized VIX property list.
const (
	PropInt32  = 1
	PropString = 2
	PropBool   = 3
	PropInt64  = 5
	PropBlob   = 6
)

// Property is one entry of a property list.
type Property struct {
	ID, Type int32
	Int      int64
	Str      string
	Bool     bool
}

// AppendProperty serializes p: i32 id, i32 type, i32 value length,
// value (a string with its NUL, a bool as one byte), little-endian.
func AppendProperty(b []byte, p Property) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, uint32(p.ID))
	b = le.AppendUint32(b, uint32(p.Type))
	switch p.Type {
	case PropInt32:
		b = le.AppendUint32(b, 4)
		return le.AppendUint32(b, uint32(p.Int))
	case PropInt64:
		b = le.AppendUint32(b, 8)
		return le.AppendUint64(b, uint64(p.Int))
	case PropBool:
		b = le.AppendUint32(b, 1)
		return append(b, b2u(p.Bool))
	default:
		b = le.AppendUint32(b, uint32(len(p.Str)+1))
		return append(append(b, p.Str...), 0)
	}
}

// ParseProperties decodes a serialized property list; a length beyond
// the buffer is ErrInvalidMessageBody.
func ParseProperties(b []byte) ([]Property, error) {
	var out []Property
	le := binary.LittleEndian
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, ErrInvalidMessageBody
		}
		p := Property{ID: int32(le.Uint32(b)), Type: int32(le.Uint32(b[4:]))}
		n := le.Uint32(b[8:])
		b = b[12:]
		if uint64(n) > uint64(len(b)) {
			return nil, ErrInvalidMessageBody
		}
		v := b[:n]
		b = b[n:]
		switch {
		case p.Type == PropInt32 && n == 4:
			p.Int = int64(int32(le.Uint32(v)))
		case p.Type == PropInt64 && n == 8:
			p.Int = int64(le.Uint64(v))
		case p.Type == PropBool && n == 1:
			p.Bool = v[0] != 0
		case p.Type == PropString:
			p.Str = string(bytes.TrimSuffix(v, []byte{0}))
		case p.Type == PropBlob:
			p.Str = string(v)
		default:
			return nil, ErrInvalidMessageBody
		}
		out = append(out, p)
	}
	return out, nil
}
