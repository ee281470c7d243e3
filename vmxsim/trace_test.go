package vmxsim

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestTrace(t *testing.T) {
	var buf bytes.Buffer
	c := newCore(t, Options{Trace: &buf})
	c.RPCI(t.Context(), Caller{Transport: "backdoor"}, []byte("tools.capability.x \x00"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"tools.capability.x \u0000"`) || !strings.Contains(lines[0], `"via":"backdoor"`) || !strings.Contains(lines[1], `"from":"host"`) {
		t.Fatalf("trace:\n%s", buf.String())
	}
	buf.Reset()
	c.RPCI(t.Context(), Caller{Transport: "unix"}, []byte("SetGuestInfo  9 \xff\x00"))
	var r TraceRecord
	if err := json.Unmarshal([]byte(strings.Split(buf.String(), "\n")[0]), &r); err != nil {
		t.Fatal(err)
	}
	if b, err := r.Bytes(); err != nil || string(b) != "SetGuestInfo  9 \xff\x00" || r.Hex == "" {
		t.Fatalf("binary record %+v: %q %v", r, b, err)
	}
}
