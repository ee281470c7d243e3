package kmsgdump

import (
	"bytes"
	"unicode/utf8"
)

// MaxLine is the longest text of one vmware.log line: Photon's kernel
// dumper sends "log " and at most 1020 bytes of a kernel line.
const MaxLine = 1020

// AppendLogLines splits text into vmware.log line texts and appends them
// to dst: one per text line, control bytes other than tab escaped as \xNN
// (a NUL would end the line on the host; a CR or ESC would garble it),
// lines longer than MaxLine split into pieces of at most MaxLine bytes
// without cutting a UTF-8 sequence or an escape. Empty lines are dropped.
// The pieces may share text's memory.
func AppendLogLines(dst [][]byte, text []byte) [][]byte {
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte{'\n'})
		text = rest
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		dst = appendSplit(dst, sanitize(line))
	}
	return dst
}

// sanitize escapes control bytes (except tab) and DEL as \xNN.
func sanitize(line []byte) []byte {
	clean := true
	for _, c := range line {
		if (c < ' ' && c != '\t') || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return line
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(line)+16)
	for _, c := range line {
		if (c < ' ' && c != '\t') || c == 0x7f {
			out = append(out, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		out = append(out, c)
	}
	return out
}

// appendSplit appends line in pieces of at most MaxLine bytes.
func appendSplit(dst [][]byte, line []byte) [][]byte {
	for len(line) > MaxLine {
		cut := MaxLine
		// Do not cut a valid UTF-8 sequence.
		start := cut
		for start > 0 && start > cut-utf8.UTFMax && !utf8.RuneStart(line[start]) {
			start--
		}
		if start != cut {
			if r, size := utf8.DecodeRune(line[start:]); r != utf8.RuneError && start+size > cut && start > 0 {
				cut = start
			}
		}
		// Do not cut a \xNN escape.
		for p := cut - 1; p > 0 && p >= cut-3; p-- {
			if line[p] == '\\' && line[p+1] == 'x' {
				cut = p
				break
			}
		}
		dst = append(dst, line[:cut])
		line = line[cut:]
	}
	if len(line) > 0 {
		dst = append(dst, line)
	}
	return dst
}
