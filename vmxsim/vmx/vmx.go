// Package vmx is the small interface between the simulated VMX's core
// (package vmxsim) and its protocol packages: who sent an RPCI (Caller),
// one guest TCLO channel (TCLOPeer), what a guest transport needs of the
// core (Core), and the control API's router (CtlMux). It holds no state
// and imports nothing of the module, so every protocol package can import
// it without importing the core.
package vmx

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
)

// MaxGuestMessage is the largest message a guest may send the VMX
// (GUESTMSG_MAX_IN_SIZE, 64 KiB).
const MaxGuestMessage = 64 << 10

// Caller describes who sent an RPCI, as the VMX sees it.
type Caller struct {
	// Transport is "vsock", "backdoor" or "unix".
	Transport string
	// Privileged is true for a vsock connection from a port below 1024,
	// or (on vmxsim's unix sockets) a peer with uid 0.
	Privileged bool
}

// TCLOPeer is one guest TCLO channel as the VMX sees it: a vsock or unix
// stream, or a backdoor message channel served by the trap.
type TCLOPeer interface {
	// Exchange delivers one command to the guest and returns its reply.
	Exchange(ctx context.Context, cmd []byte) ([]byte, error)
	// Done is closed when the guest's channel has gone away.
	Done() <-chan struct{}
	// Close closes the channel.
	Close() error
}

// Core is what a guest transport (the backdoor) needs of the VMX core.
type Core interface {
	// Answer answers one RPCI request. dropped reports a request that
	// fault injection dropped unhandled: the transport then leaves no
	// reply at all, as for a message that never arrived whole.
	Answer(ctx context.Context, caller Caller, req []byte) (reply []byte, dropped bool)
	// ServeTCLO drives one guest TCLO channel until it ends; the channel
	// is closed on return.
	ServeTCLO(ctx context.Context, peer TCLOPeer) error
	// Remark writes a remark of the VMX itself to vmware.log.
	Remark(format string, args ...any)
	// Logger receives the simulator's own diagnostics.
	Logger() *slog.Logger
	// ReportBackdoor makes stats part of the core's state (the
	// "backdoor" object of `vmxsim ctl state`). stats is called without
	// the core's lock held.
	ReportBackdoor(stats func() BackdoorStats)
	// HostCall answers a low-bandwidth backdoor command that is about the
	// VM and its host rather than the message channel (GETMHZ, the
	// device list, GETGUIOPTIONS): bx is EBX in, ax and bxOut are EAX
	// and EBX out; ok is false for a command the core does not know.
	HostCall(cmd uint16, bx uint32) (ax, bxOut uint32, ok bool)
}

// BackdoorStats counts the calls a backdoor has served; it is the
// "backdoor" object of `vmxsim ctl state` under `vmxsim run`.
type BackdoorStats struct {
	LB       uint64 `json:"lb"`       // IN on the LB port
	HBOut    uint64 `json:"hbOut"`    // REP OUTSB on the HB port
	HBIn     uint64 `json:"hbIn"`     // REP INSB on the HB port
	Opens    uint64 `json:"opens"`    // channels opened
	CPTs     uint64 `json:"cpts"`     // calls failed with the CPT status
	Kills    uint64 `json:"kills"`    // guests killed by a kill fault
	Channels int    `json:"channels"` // channels open now
	NoHB     bool   `json:"noHB"`
	// RPCIRoundTrips counts RPCI exchanges completed (request received,
	// reply delivered); RPCIRoundTripMedianUs is the median time of the
	// last 4096 as the VMX sees them, from the request's SENDSIZE to the
	// reply's RECVSTATUS.
	RPCIRoundTrips        uint64  `json:"rpciRoundTrips"`
	RPCIRoundTripMedianUs float64 `json:"rpciRoundTripMedianUs"`
	// TimeReads counts the time commands answered (GETTIME,
	// GETTIMEFULL, GETTIMEFULL_WITH_LAG), StopCatchups the STOPCATCHUP
	// calls (a guest sends one after stepping its clock).
	TimeReads    uint64 `json:"timeReads"`
	StopCatchups uint64 `json:"stopCatchups"`
	// ClockOffset is how far the host clock of the time commands is
	// ahead of the real time (SetClockOffset), as a Go duration.
	ClockOffset string `json:"clockOffset"`
}

// TrapStats counts the ptrace trap's work; it is the "trap" object of
// `vmxsim ctl state` under `vmxsim run`. Every stop is the traced
// program waiting on the tracer, so Stops per operation is the trap's
// share of the operation's cost.
type TrapStats struct {
	Stops    uint64 `json:"stops"`    // ptrace stops handled, of every kind
	Backdoor uint64 `json:"backdoor"` // backdoor instructions emulated
	CPUID    uint64 `json:"cpuid"`    // cpuid instructions answered
	Signals  uint64 `json:"signals"`  // signals passed to the program
	Execs    uint64 `json:"execs"`    // program images started
	Threads  uint64 `json:"threads"`  // threads and processes followed
	// Seccomp counts the system calls the filter handed to the tracer
	// (SECCOMP_RET_TRACE), by name; SyscallExits the exit stops of the
	// rewritten socket calls.
	Seccomp      map[string]uint64 `json:"seccomp"`
	SyscallExits uint64            `json:"syscallExits"`
	// The vsock trap: AF_VSOCK sockets made unix sockets, connects
	// redirected to the simulator and connects refused as the VMX would.
	VSockSockets  uint64 `json:"vsockSockets"`
	VSockConnects uint64 `json:"vsockConnects"`
	VSockRefused  uint64 `json:"vsockRefused"`
}

// CtlMux is the control API's router (DIR/ctl.sock): protocol packages
// add their routes to it (patterns as http.ServeMux).
type CtlMux interface {
	HandleCtl(pattern string, h http.HandlerFunc)
}

// WriteJSON answers v as indented JSON, as every control route does.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Printable returns s as it is when it is plain text, else quoted (and
// cut to 64 bytes), for logs of what a guest sent.
func Printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			if len(s) > 64 {
				s = s[:64]
			}
			return strconv.Quote(s)
		}
	}
	return s
}

// VSock connections from the trap. Under `vmxsim run` a guest program's
// AF_VSOCK stream becomes a unix socket that the trap connects to the
// simulator's DIR/vsock.sock; before the program can write a byte the trap
// writes a VSockPreamble on it, so the VMX knows the vsock addresses the
// program used, its source port above all (below 1024: a privileged
// caller).

// VSockPreambleSize is the encoded size of a VSockPreamble.
const VSockPreambleSize = 20

// vsockMagic starts every preamble.
const vsockMagic = "VSK1"

// VSockPreamble is the vsock address pair of one trapped connection.
type VSockPreamble struct {
	DstCID, DstPort uint32 // where the guest connected: CID 0 or 2, port 975 or 976
	SrcCID, SrcPort uint32 // the guest's bound (or auto-bound) address
}

// Encode returns the 20-byte wire form: "VSK1" and the four values as
// little-endian u32s in field order.
func (p VSockPreamble) Encode() []byte {
	b := []byte(vsockMagic)
	for _, v := range []uint32{p.DstCID, p.DstPort, p.SrcCID, p.SrcPort} {
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	return b
}

// DecodeVSockPreamble parses Encode's output.
func DecodeVSockPreamble(b []byte) (VSockPreamble, error) {
	if len(b) != VSockPreambleSize || string(b[:4]) != vsockMagic {
		return VSockPreamble{}, errBadPreamble
	}
	u := func(i int) uint32 {
		o := 4 + 4*i
		return uint32(b[o]) | uint32(b[o+1])<<8 | uint32(b[o+2])<<16 | uint32(b[o+3])<<24
	}
	return VSockPreamble{DstCID: u(0), DstPort: u(1), SrcCID: u(2), SrcPort: u(3)}, nil
}

var errBadPreamble = errors.New("vmx: bad vsock preamble")
