package vmxsim

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// TraceRecord is one line of a trace (vmxsim serve|run --trace FILE): one
// GuestRPC message as it crossed between guest and host.
//
//	{"t":"2026-11-22T10:00:00.123456Z","ch":"rpci","from":"guest","via":"backdoor","msg":"tools.set.version 12352\u0000"}
//
// Ch is "rpci" or "tclo"; From is "guest" or "host"; Via is the transport
// of an RPCI ("backdoor", "unix", "vsock"), empty for TCLO. The message's
// exact bytes are Msg, a JSON string, when they are valid UTF-8 (NULs and
// trailing spaces survive as \u0000 and spaces); otherwise (binary
// payloads such as NicInfo XDR) Msg is absent and Hex holds them.
type TraceRecord struct {
	Time string `json:"t"`
	Ch   string `json:"ch"`
	From string `json:"from"`
	Via  string `json:"via,omitempty"`
	Msg  string `json:"msg,omitempty"`
	Hex  string `json:"hex,omitempty"`
}

// Bytes returns the message's bytes.
func (r TraceRecord) Bytes() ([]byte, error) {
	if r.Hex != "" {
		return hex.DecodeString(r.Hex)
	}
	return []byte(r.Msg), nil
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
	r := TraceRecord{Ch: ch, From: from, Via: via}
	if utf8.Valid(msg) {
		r.Msg = string(msg)
	} else {
		r.Hex = hex.EncodeToString(msg)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r.Time = t.now().UTC().Format(time.RFC3339Nano)
	t.enc.Encode(r)
}
