package vmxsim

import (
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"time"
)

// TraceRecord is one line of a trace (vmxsim serve|run --trace FILE): one
// GuestRPC message as it crossed between guest and host.
//
//	{"t":"2026-11-22T10:00:00.123456Z","ch":"rpci","from":"guest","via":"backdoor","msg":"tools.set.version 12352\x00"}
//
// Ch is "rpci" or "tclo"; From is "guest" or "host"; Via is the transport
// of an RPCI ("backdoor", "unix", "vsock"), empty for TCLO. Msg is the
// message's exact bytes as a Go-quoted string (strconv.Quote), so NULs,
// trailing spaces and binary payloads survive and stay readable; decode it
// with strconv.Unquote.
type TraceRecord struct {
	Time string `json:"t"`
	Ch   string `json:"ch"`
	From string `json:"from"`
	Via  string `json:"via,omitempty"`
	Msg  string `json:"msg"`
}

// Bytes returns the message's bytes.
func (r TraceRecord) Bytes() ([]byte, error) {
	s, err := strconv.Unquote(r.Msg)
	return []byte(s), err
}

// Tracer writes TraceRecords. A nil Tracer records nothing.
type Tracer struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
}

// NewTracer returns a tracer writing to w.
func NewTracer(w io.Writer) *Tracer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Tracer{enc: enc, now: time.Now}
}

// Record writes one message.
func (t *Tracer) Record(ch, from, via string, msg []byte) {
	if t == nil {
		return
	}
	r := TraceRecord{Ch: ch, From: from, Via: via, Msg: strconv.Quote(string(msg))}
	t.mu.Lock()
	defer t.mu.Unlock()
	r.Time = t.now().UTC().Format(time.RFC3339Nano)
	t.enc.Encode(r)
}
