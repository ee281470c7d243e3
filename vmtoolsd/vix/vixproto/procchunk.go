package vixproto

import (
	"strconv"
	"strings"
)

// ListProcessesEx chunking. A process list that does not fit one reply
// (its size with its NUL, plus ProcChunkFirstHeader, over
// MaxResultBuffer) is kept by the guest under a key; the first reply
// carries
// "<key>K</key><totalSize>S</totalSize><leftToSend>L</leftToSend>" and
// the first bytes of the list, and the host asks again with that key and
// the offset it has received so far; later replies carry only
// "<leftToSend>L</leftToSend>" and the next bytes. Chunks are cut at byte
// offsets, not at entry boundaries. totalSize counts the list's
// terminating NUL, which the last chunk carries and the text reply
// cannot (it ends at its first NUL): the data received adds up to
// totalSize-1. The header reserves are what open-vm-tools reserves: its
// format strings' sizes plus ten digits per number.
const (
	ProcChunkFirstHeader = 96
	ProcChunkLaterHeader = 38
	// MaxResultBuffer is the result size open-vm-tools allows a
	// handler (maxResultBufferSize): 65536 less 92 bytes for the reply's
	// prefix, counted with C's int-sized character constants. Chunks are
	// cut to it (observed from Debian's vmtoolsd: 65348 bytes of data
	// after the first header).
	MaxResultBuffer = 65444
)

// AppendProcChunk appends one chunk of a cached list: the first header
// when offset is 0, else the later one, then data.
func AppendProcChunk(b []byte, key uint32, total int, offset uint32, left int, data []byte) []byte {
	if offset == 0 {
		b = strconv.AppendUint(append(b, "<key>"...), uint64(key), 10)
		b = strconv.AppendInt(append(b, "</key><totalSize>"...), int64(total), 10)
		b = append(b, "</totalSize>"...)
	}
	b = strconv.AppendInt(append(b, "<leftToSend>"...), int64(left), 10)
	return append(append(b, "</leftToSend>"...), data...)
}

// ProcChunk is a decoded ListProcessesEx reply.
type ProcChunk struct {
	// Chunked is set when the reply carries a chunk header; Key and
	// Total are set in the first chunk only.
	Chunked     bool
	Key         uint32
	Total, Left int64
	Data        string
}

// ParseProcChunk splits a ListProcessesEx reply into its chunk header
// (if any) and data; a header with a malformed number is
// ErrInvalidMessageBody.
func ParseProcChunk(s string) (ProcChunk, error) {
	var c ProcChunk
	num := func(name string) (int64, bool) {
		open, closing := "<"+name+">", "</"+name+">"
		rest, ok := strings.CutPrefix(s, open)
		if !ok {
			return 0, false
		}
		v, after, ok := strings.Cut(rest, closing)
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 {
			return -1, false
		}
		s = after
		return n, true
	}
	if k, ok := num("key"); ok {
		t, ok := num("totalSize")
		if !ok || k > 1<<32-1 {
			return c, ErrInvalidMessageBody
		}
		c.Key, c.Total = uint32(k), t
	} else if k < 0 {
		return c, ErrInvalidMessageBody
	}
	l, ok := num("leftToSend")
	switch {
	case ok:
		c.Chunked, c.Left = true, l
	case l < 0 || c.Key != 0:
		return c, ErrInvalidMessageBody
	}
	c.Data = s
	return c, nil
}

// JoinProcChunks returns the whole process list from a ListProcessesEx
// reply payload: first itself when it is not chunked, else its data and
// that of every chunk next fetches (with the key and the bytes received
// so far), until nothing is left, as the VMX does. A list announced
// over max bytes, a chunk that brings nothing while bytes are left, or
// data that does not add up to totalSize (less the NUL the last text
// reply cannot carry) is ErrInvalidMessageBody; next's errors are
// returned as they are.
func JoinProcChunks(first []byte, max int64, next func(key, offset uint32) ([]byte, error)) ([]byte, error) {
	c, err := ParseProcChunk(string(first))
	if err != nil {
		return nil, err
	}
	if !c.Chunked {
		return first, nil
	}
	if c.Key == 0 || c.Total > max || c.Total > 1<<32-1 {
		return nil, ErrInvalidMessageBody
	}
	key, total, out := c.Key, c.Total, []byte(c.Data)
	for c.Left > 0 {
		if len(c.Data) == 0 || int64(len(out)) >= total {
			return nil, ErrInvalidMessageBody
		}
		p, err := next(key, uint32(len(out)))
		if err != nil {
			return nil, err
		}
		if c, err = ParseProcChunk(string(p)); err != nil || !c.Chunked || c.Key != 0 {
			return nil, ErrInvalidMessageBody
		}
		out = append(out, c.Data...)
	}
	if n := int64(len(out)); n != total-1 && n != total {
		return nil, ErrInvalidMessageBody
	}
	return out, nil
}
