package vmbackup

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/govmtools/govmtools/rpc"
)

// TCLO commands (lib/include/vmware/guestrpc/vmbackup.h).
const (
	CmdStart             = "vmbackup.start"
	CmdAbort             = "vmbackup.abort"
	CmdSnapshotDone      = "vmbackup.snapshotDone"
	CmdSnapshotCompleted = "vmbackup.snapshotCompleted"
)

// Reply texts after "ERROR ", as vmtoolsd words them.
const (
	ErrInProgress      = rpc.Failure("Quiesce operation already in progress.")
	ErrInit            = rpc.Failure("Error initializing quiesce operation.")
	ErrNoOperation     = rpc.Failure("Error: no quiesce operation in progress")
	ErrUnexpectedDone  = rpc.Failure("Error: unexpected state for quiesce done message.")
	ErrNoComplete      = rpc.Failure("Error: no quiesce complete in progress")
	ErrUnexpectedCompl = rpc.Failure("Error: unexpected state for complete message.")
)

// Code is a VmBackupStatus, the second field of vmbackup.eventSet.
type Code int

// Status codes.
const (
	Success         Code = 0
	InvalidState    Code = 1
	ScriptError     Code = 2
	SyncError       Code = 3
	RemoteAbort     Code = 4
	UnexpectedError Code = 5
)

// Event names sent by Linux vmtoolsd.
const (
	EvReset           = "reset"
	EvKeepAlive       = "req.keepAlive"
	EvSnapshotCommit  = "prov.snapshotCommit"
	EvGenericManifest = "req.genericManifest"
	EvError           = "req.error"
	EvAborted         = "req.aborted"
	EvDone            = "req.done"
)

// Event messages.
const (
	MsgScriptFailed    = "Custom quiesce script failed."
	MsgScriptStart     = "Error when starting custom quiesce scripts."
	MsgSyncEnable      = "Error when enabling the sync provider."
	MsgSyncNotify      = "Error when notifying the sync provider."
	MsgCanceled        = "Quiesce canceled."
	MsgCannotCancel    = "Quiesce could not be canceled."
	MsgFreezeOpFailed  = "'VmBackupOnFreeze' operation failed."
	MsgThawOpFailed    = "'VmBackupOnThaw' operation failed."
	DefaultManifestDir = "/etc/vmware-tools"
	ManifestName       = "quiesce_manifest.xml"
)

// Event is one guest→host vmbackup.eventSet message.
type Event struct {
	Name string
	Code Code
	Msg  string
}

// Request is the RPCI bytes: "vmbackup.eventSet <name> <code> <msg>" and
// a NUL; an empty message keeps the space before it.
func (e Event) Request() []byte {
	return fmt.Appendf(nil, "vmbackup.eventSet %s %d %s\x00", e.Name, e.Code, e.Msg)
}

func (e Event) String() string { return fmt.Sprintf("%s %d %s", e.Name, e.Code, e.Msg) }

// MaxStartArgs bounds the vmbackup.start argument (the volume list is a
// space-separated set of disk UUIDs; 3200 bytes is startWithOpts' limit).
const MaxStartArgs = 4096

// StartArgs are vmbackup.start's arguments.
type StartArgs struct {
	// Bare is true for "vmbackup.start" with no argument at all: no
	// tools.conf flag is read, so no script runs (as vmtoolsd).
	Bare bool
	// GenerateManifests is the first token, non-zero.
	GenerateManifests bool
	// Volumes is the rest, starting at the space after the token, as
	// vmtoolsd keeps it (Linux freezes every local mount whatever it says).
	Volumes string
}

// ParseStart decodes the bytes after "vmbackup.start ". vmtoolsd reads
// the first token with strtol(…, 0) and ignores what does not parse;
// govmtools is stricter: a token that is not a C integer (decimal, 0x hex
// or 0 octal, optionally signed), a NUL or control byte, a non-ASCII byte
// or more than MaxStartArgs bytes is malformed, and the host gets
// ErrInit before anything is frozen.
func ParseStart(args []byte) (StartArgs, error) {
	if len(args) == 0 {
		return StartArgs{Bare: true}, nil
	}
	if len(args) > MaxStartArgs {
		return StartArgs{}, fmt.Errorf("vmbackup.start: %d argument bytes, more than %d", len(args), MaxStartArgs)
	}
	for i, c := range args {
		if c < 0x20 || c > 0x7e {
			return StartArgs{}, fmt.Errorf("vmbackup.start: byte %#x at offset %d", c, i)
		}
	}
	rest := bytes.TrimLeft(args, " ")
	tok := rest
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		tok, rest = rest[:i], rest[i:]
	} else {
		rest = nil
	}
	if len(tok) == 0 {
		return StartArgs{}, fmt.Errorf("vmbackup.start: no generateManifests token in %q", args)
	}
	digits, base := cInt(string(tok))
	n, err := strconv.ParseInt(digits, base, 64)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		n, err = 1, nil // strtol saturates: still non-zero
	}
	if err != nil {
		return StartArgs{}, fmt.Errorf("vmbackup.start: generateManifests %q is not an integer", tok)
	}
	return StartArgs{GenerateManifests: n != 0, Volumes: string(rest)}, nil
}

// cInt maps a strtol base-0 literal to ParseInt's arguments.
func cInt(s string) (string, int) {
	sign := ""
	if s != "" && (s[0] == '-' || s[0] == '+') {
		sign, s = s[:1], s[1:]
	}
	if s == "" || s[0] == '-' || s[0] == '+' {
		return "x", 10 // never parses
	}
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s = s[2:]
		if s == "" || s[0] == '-' || s[0] == '+' {
			return "x", 10
		}
		return sign + s, 16
	case len(s) > 1 && s[0] == '0':
		return sign + s[1:], 8
	}
	return sign + s, 10
}
