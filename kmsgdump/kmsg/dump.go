package kmsg

import (
	"bytes"
	"strconv"
	"time"
)

// DumpHeader is the first line pstore writes into every part of a kernel
// log dump: "<reason>#<count> Part<part>", e.g. "Panic#1 Part2". Part 1
// holds the newest messages; higher parts hold older ones.
type DumpHeader struct {
	Reason string // Panic, Oops, Emergency, Restart, Halt, Poweroff, Unknown, ...
	Count  int    // the dump count of that boot (oopscount)
	Part   int    // 1-based
}

// ParseDumpHeader parses a pstore dump header line (without its newline).
func ParseDumpHeader(line []byte) (DumpHeader, bool) {
	var h DumpHeader
	hash := bytes.IndexByte(line, '#')
	if hash <= 0 {
		return h, false
	}
	reason := line[:hash]
	for _, c := range reason {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == '-') {
			return h, false
		}
	}
	count, rest, ok := bytes.Cut(line[hash+1:], []byte(" Part"))
	if !ok {
		return h, false
	}
	n, err := strconv.ParseUint(string(count), 10, 31)
	if err != nil {
		return h, false
	}
	p, err := strconv.ParseUint(string(rest), 10, 31)
	if err != nil || p == 0 {
		return h, false
	}
	h.Reason, h.Count, h.Part = string(reason), int(n), int(p)
	return h, true
}

// EFIRecordID splits the record id of an efi-pstore file name
// (dmesg-efi-<id>): the kernel builds it as (seconds*100 + part)*1000 +
// count, seconds being the dump's wall-clock time.
func EFIRecordID(id uint64) (at time.Time, part, count int) {
	count = int(id % 1000)
	part = int(id / 1000 % 100)
	sec := id / 100000
	if sec > 1<<62 {
		sec = 0
	}
	return time.Unix(int64(sec), 0).UTC(), part, count
}
