package vmxsim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// VMXLog writes vmware.log lines in the VMX's format:
//
//	2026-11-22T02:08:00.123Z| vcpu-0| I125: Guest: <text>
//
// Guest text comes from the "log" RPCI; the VMX's own remarks use the
// "vmx" thread. Every line is flushed as it is written, so tests and
// people can tail the file.
type VMXLog struct {
	path string

	mu sync.Mutex
	w  io.Writer
	f  *os.File
}

// TimeFormat is the timestamp layout of a vmware.log line (UTC, ms).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// OpenVMXLog opens (appending) or creates the log at path. An empty path
// gives a log that discards lines.
func OpenVMXLog(path string) (*VMXLog, error) {
	if path == "" {
		return &VMXLog{w: io.Discard}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("vmxsim: open vmware.log: %w", err)
	}
	return &VMXLog{path: path, w: f, f: f}, nil
}

// Path returns the file's path, or "" for a discarding log.
func (l *VMXLog) Path() string { return l.path }

// Guest writes text from the guest as "Guest: " lines. One trailing NUL
// and trailing newlines are dropped; text with embedded newlines becomes
// one line per text line.
func (l *VMXLog) Guest(text []byte) {
	text = bytes.TrimSuffix(text, []byte{0})
	text = bytes.TrimRight(text, "\n")
	for _, line := range bytes.Split(text, []byte("\n")) {
		l.write("vcpu-0", "Guest: ", line)
	}
}

// Host writes a remark of the VMX itself.
func (l *VMXLog) Host(format string, args ...any) {
	l.write("vmx", "", fmt.Appendf(nil, format, args...))
}

func (l *VMXLog) write(thread, prefix string, text []byte) {
	line := make([]byte, 0, len(text)+64)
	line = time.Now().UTC().AppendFormat(line, TimeFormat)
	line = append(line, "| "...)
	line = append(line, thread...)
	line = append(line, "| I125: "...)
	line = append(line, prefix...)
	line = append(line, text...)
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(line)
}

// Close closes the file.
func (l *VMXLog) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}
