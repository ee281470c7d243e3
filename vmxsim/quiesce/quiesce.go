// Package quiesce is the host half of a quiesced snapshot, as the VMX
// drives it (docs/vmbackup.md, "Host side"): send vmbackup.start over
// TCLO, wait for the guest's prov.snapshotCommit event (its file systems
// are frozen), take the snapshot, send vmbackup.snapshotDone (the guest
// thaws before it answers) and wait for req.done. It answers the guest's
// vmbackup.eventSet RPCIs for any guest (ours or open-vm-tools'), records
// every event of every operation for `vmxsim ctl state`, and maps each
// failure to the fault vSphere returns for it.
//
// The package imports only vmx: the core (package vmxsim) creates the
// Driver with its TCLO send function and registers EventSet.
package quiesce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event names and codes (open-vm-tools' VmBackupStatus), as guests send
// them in "vmbackup.eventSet <name> <code> <message>".
const (
	EventReset     = "reset"
	EventKeepAlive = "req.keepAlive"
	EventCommit    = "prov.snapshotCommit"
	EventManifest  = "req.genericManifest"
	EventError     = "req.error"
	EventAborted   = "req.aborted"
	EventDone      = "req.done"

	CodeSuccess         = 0
	CodeInvalidState    = 1
	CodeScriptError     = 2
	CodeSyncError       = 3
	CodeRemoteAbort     = 4
	CodeUnexpectedError = 5
)

// knownEvents are the event names a host accepts (the Windows-only ones
// included: the host does not know the guest's OS).
var knownEvents = map[string]bool{
	EventReset: true, EventKeepAlive: true, EventCommit: true, EventManifest: true,
	EventError: true, EventAborted: true, EventDone: true,
	"req.manifest": true, "prov.snapshotPrepare": true, "prov.snapshotAbort": true, "req.writerError": true,
}

// Faults, by the vim25 type vSphere returns in the snapshot task's error.
const (
	FaultApplication   = "ApplicationQuiesceFault" // a freeze script failed
	FaultSnapshot      = "SnapshotFault"           // another guest error
	FaultFilesystem    = "FilesystemQuiesceFault"  // frozen too long / thaw failed
	FaultTimedout      = "Timedout"                // the guest went silent
	FaultToolsDown     = "ToolsUnavailable"        // no tools to quiesce
	FaultInProgress    = "TaskInProgress"          // a quiesce is already running
	FaultCanceled      = "RequestCanceled"         // aborted by the host
	FaultSnapshotTaken = "SnapshotFault"           // taking the snapshot itself failed
)

// Fault messages, as vSphere words them (docs/vmbackup.md, "Host side").
const (
	MsgQuiesce    = "An error occurred while quiescing the virtual machine."
	MsgTimedOut   = "Timed out while quiescing the virtual machine."
	MsgFrozenLong = "Cannot create a quiesced snapshot because the create snapshot operation exceeded the time limit for holding off I/O in the frozen virtual machine."
	MsgToolsDown  = "Cannot quiesce this virtual machine because VMware Tools is not currently available."
	MsgInProgress = "Another quiesce operation is in progress."
	MsgCanceled   = "The quiesce operation was canceled."
)

// Defaults of Options.
const (
	DefaultStartArgs    = "1"
	DefaultEventTimeout = 30 * time.Second // 12 keep-alive periods
	DefaultTimeout      = 15 * time.Minute // vCenter's quiesce limit
	maxEvents           = 1024             // per operation
	maxOps              = 16               // operations kept for State
	maxStray            = 32               // events outside any operation
)

// Event is one vmbackup.eventSet the guest sent.
type Event struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	// AtMs is when it arrived, in ms since the operation began.
	AtMs float64 `json:"atMs"`
}

// String is the event as the wire carries it after "vmbackup.eventSet ".
func (e Event) String() string { return fmt.Sprintf("%s %d %s", e.Name, e.Code, e.Message) }

// Options are one snapshot request.
type Options struct {
	// Quiesce asks for a quiesced snapshot; without it the snapshot is
	// taken at once and the guest is not involved.
	Quiesce bool `json:"quiesce"`
	// StartArgs are the bytes after "vmbackup.start " ("" means a bare
	// "vmbackup.start"); nil means DefaultStartArgs, what real hosts send.
	StartArgs *string `json:"startArgs,omitempty"`
	// EventTimeout is how long the guest may stay silent; then the host
	// sends vmbackup.abort and fails with Timedout. 0 means the default.
	EventTimeout Duration `json:"eventTimeout,omitempty"`
	// Timeout bounds the whole operation. 0 means the default.
	Timeout Duration `json:"timeout,omitempty"`
	// DelayDone (fault injection) holds vmbackup.snapshotDone back this
	// long after the snapshot, whatever the guest does meanwhile.
	DelayDone Duration `json:"delayDone,omitempty"`
}

// Duration is a time.Duration that reads and writes JSON as "1.5s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, time.Duration(d).String()), nil
}

// UnmarshalJSON reads a Go duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if s, err := strconv.Unquote(string(b)); err == nil {
		v, err := time.ParseDuration(s)
		*d = Duration(v)
		return err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	*d = Duration(n)
	return err
}

// Result is one snapshot operation as `vmxsim ctl state` shows it.
type Result struct {
	ID       int     `json:"id"`
	Quiesced bool    `json:"quiesced"`
	Running  bool    `json:"running"`
	Start    string  `json:"start,omitempty"`    // the start command sent
	Replies  []Reply `json:"replies,omitempty"`  // TCLO commands and replies
	Events   []Event `json:"events"`             // every event, keep-alives included
	Fault    string  `json:"fault,omitempty"`    // vim25 fault type; "" = success
	Message  string  `json:"message,omitempty"`  // its localized message
	Manifest string  `json:"manifest,omitempty"` // req.genericManifest path
	// StartToCommitMs is from sending vmbackup.start to receiving
	// prov.snapshotCommit (the guest frozen); DoneToThawedMs from sending
	// vmbackup.snapshotDone to its reply (the guest thaws before it
	// answers); DoneToFinishMs from sending it to req.done. -1 = never.
	StartToCommitMs float64 `json:"startToCommitMs"`
	DoneToThawedMs  float64 `json:"doneToThawedMs"`
	DoneToFinishMs  float64 `json:"doneToFinishMs"`
}

// Reply is one TCLO command the driver sent and the guest's answer.
type Reply struct {
	Cmd   string `json:"cmd"`
	Reply string `json:"reply"`
}

// Error is a failed snapshot: the vSphere fault and its message.
type Error struct {
	Fault, Message string
}

func (e *Error) Error() string { return e.Fault + ": " + e.Message }

// State is the driver's part of `vmxsim ctl state`.
type State struct {
	// Snapshots are the last operations, oldest first.
	Snapshots []Result `json:"snapshots"`
	// Stray are events that arrived with no operation running (a guest
	// quiesced by someone else, or late), the latest last.
	Stray []Event `json:"stray,omitempty"`
	// EventsAnswered counts every vmbackup.eventSet answered.
	EventsAnswered int `json:"eventsAnswered"`
}

// Host is what the driver needs of the VMX core.
type Host struct {
	// Send sends one TCLO command to the tools service.
	Send func(ctx context.Context, cmd string) ([]byte, error)
	// NoTools is the error Send returns when no tools are attached.
	NoTools error
	// Remark writes to vmware.log.
	Remark func(format string, args ...any)
	Logger *slog.Logger
}

// Driver runs snapshot operations, one at a time.
type Driver struct {
	host Host

	mu       sync.Mutex
	cur      *op
	ops      []*op
	stray    []Event
	answered int
	nextID   int
	take     Take          // for the control API's snapshots
	delay    time.Duration // DelayDone of operations that set none
}

// op is one operation in flight or done.
type op struct {
	res   Result
	begun time.Time
	wake  chan struct{} // signalled on each event
	abort chan struct{} // closed by Abort
	once  sync.Once
}

// New returns a driver.
func New(h Host) *Driver {
	if h.Remark == nil {
		h.Remark = func(string, ...any) {}
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{host: h}
}

// ParseEvent parses the argument of a vmbackup.eventSet RPCI: "<name>
// <code> <message>" with an optional C terminator; the message may be
// empty (its space kept) or missing.
func ParseEvent(args []byte) (Event, error) {
	s := strings.TrimSuffix(string(args), "\x00")
	name, rest, _ := strings.Cut(s, " ")
	code, msg, _ := strings.Cut(rest, " ")
	if name == "" || code == "" {
		return Event{}, errors.New("event needs a name and a code")
	}
	n, err := strconv.ParseUint(code, 10, 31)
	if err != nil {
		return Event{}, fmt.Errorf("event code %q", code)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return Event{}, errors.New("event is not printable text")
		}
	}
	return Event{Name: name, Code: int(n), Message: msg}, nil
}

// EventSet answers one vmbackup.eventSet RPCI (args: the bytes after the
// command name). It accepts the events of any guest, with or without an
// operation running, and records them.
func (d *Driver) EventSet(args []byte) []byte {
	e, err := ParseEvent(args)
	if err != nil || !knownEvents[e.Name] {
		d.host.Logger.Warn("vmbackup.eventSet refused", "err", err, "event", e.Name)
		return []byte("0 Error processing event.")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answered++
	o := d.cur
	if o == nil {
		d.stray = append(d.stray, e)
		if len(d.stray) > maxStray {
			d.stray = d.stray[1:]
		}
		return []byte("1 ")
	}
	e.AtMs = ms(time.Since(o.begun))
	if len(o.res.Events) < maxEvents {
		o.res.Events = append(o.res.Events, e)
	}
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return []byte("1 ")
}

// State returns the recorded operations.
func (d *Driver) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := State{Snapshots: []Result{}, Stray: append([]Event(nil), d.stray...), EventsAnswered: d.answered}
	for _, o := range d.ops {
		r := o.res
		r.Events = append([]Event{}, r.Events...)
		r.Replies = append([]Reply(nil), r.Replies...)
		s.Snapshots = append(s.Snapshots, r)
	}
	return s
}

// Abort sends vmbackup.abort to the guest during the running operation,
// which then fails with RequestCanceled (unless it failed otherwise
// first). It returns the guest's reply.
func (d *Driver) Abort(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	o := d.cur
	d.mu.Unlock()
	if o == nil {
		return nil, errors.New("vmxsim: no snapshot operation in progress")
	}
	o.once.Do(func() { close(o.abort) })
	reply, err := d.host.Send(ctx, "vmbackup.abort")
	d.record(o, "vmbackup.abort", reply, err)
	return reply, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
