// Package vix is vmtoolsd's guest-operations service (open-vm-tools' vix
// plugin; docs/guestops.md): it answers the TCLO commands
// Vix_1_Relayed_Command and Vix_1_Get_ToolsProperties. Each relayed
// request is validated (vixproto), its credential type checked (only
// name/password types 1 and 4; SAML and every "trust the host" type are
// refused with VIX_E_NOT_SUPPORTED), failed logins are rate limited and
// logged, and the operation runs in a vmware-vix-helper child that
// authenticates with PAM and becomes the user: the daemon never performs
// a guest operation with its own (root) credentials. The daemon keeps
// the list of programs it started, with exit codes and end times, for
// ListProcessesEx.
package vix

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/govmtools/govmtools/vmtoolsd"
	"github.com/govmtools/govmtools/vmtoolsd/toolsconf"
	"github.com/govmtools/govmtools/vmtoolsd/vix/helper"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Service is the plugin.
type Service struct {
	// Helper is the path of vmware-vix-helper.
	Helper string
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ToolsVersion is reported in the tools properties.
	ToolsVersion string
	// TransferIdle ends a file transfer's helper after this long
	// without a packet; 0 means the package's TransferIdle.
	TransferIdle time.Duration
	// OS returns the OS's short and full names (guest info's
	// INFO_OS_NAME and INFO_OS_NAME_FULL); nil means empty ones.
	OS func() (short, full string)
	// Conf returns the current tools.conf (its [guestoperations]
	// switches, read at every request); nil means none.
	Conf func() *toolsconf.File

	mu      sync.Mutex
	pipes   map[io.Closer]bool // waiters' helper pipes, closed at stop
	stopped bool
	procs   []*proc
	fails   map[string]*failures
	xfer    transfers
	lists   procLists
	waiters sync.WaitGroup
}

var _ vmtoolsd.Plugin = (*Service)(nil)

// Failed-login limits: after MaxFailures failures of one user within
// FailureWindow, further logins of that user are refused without asking
// PAM until the window since the last failure has passed.
const (
	MaxFailures   = 5
	FailureWindow = time.Minute
	// ExitedRetention is how long an exited started program stays in the
	// process list (open-vm-tools: 5 minutes).
	ExitedRetention = 5 * time.Minute
)

type failures struct {
	n    int
	last time.Time
}

// proc is a program StartProgram started.
type proc struct {
	vixproto.Process
	exited bool
}

// Plug registers the TCLO commands.
func (s *Service) Plug(r *vmtoolsd.Registry) {
	r.Mux().HandleFunc(vixproto.RelayedCommand, s.relayed)
	r.Mux().HandleFunc(vixproto.GetToolsProperties, func(ctx context.Context, args []byte) ([]byte, error) {
		return s.toolsProperties(), nil
	})
	r.Go("vix", func(ctx context.Context) error {
		<-ctx.Done()
		s.stop()
		return nil
	})
}

func (s *Service) lg() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// relayed answers Vix_1_Relayed_Command: always "OK " with the VIX
// reply inside, as open-vm-tools does.
func (s *Service) relayed(ctx context.Context, args []byte) ([]byte, error) {
	defer clear(args) // the credential, in the request as received
	_, msg, err := vixproto.SplitRelayed(args)
	if err != nil {
		return vixproto.Reply(vixproto.ErrInvalidMessageHeader, 0, nil), nil
	}
	req, err := vixproto.Decode(msg)
	if err != nil && len(msg) >= vixproto.HeaderLen {
		// The TCLO layer drops one trailing NUL of every command; a
		// message ending in one (the credential's terminator) is one
		// byte short. Restore it and try again.
		req, err = vixproto.Decode(append(msg[:len(msg):len(msg)], 0))
	}
	if err != nil {
		return vixproto.Reply(vixproto.ErrInvalidMessageHeader, 0, nil), nil
	}
	defer clear(req.Cred)
	binaryReply := req.CommonFlags&vixproto.FlagGuestReturnsBinary != 0
	e, addl, payload := s.dispatch(ctx, req)
	if binaryReply {
		return vixproto.BinaryReply(e, addl, payload), nil
	}
	return vixproto.Reply(e, addl, payload), nil
}

func (s *Service) dispatch(ctx context.Context, req *vixproto.Request) (vixproto.Error, uint32, []byte) {
	if s.disabled(req.OpCode) {
		// Before authentication, as open-vm-tools checks.
		s.lg().Info("guest operation disabled by tools.conf", "op", req.OpCode)
		return vixproto.ErrOperationDisabled, 0, nil
	}
	switch req.OpCode {
	case vixproto.OpGetToolsState:
		return 0, 0, s.toolsPropertiesPayload()
	case vixproto.OpWaitForTools, vixproto.OpCaptureScreen:
		return 0, 0, nil
	case vixproto.OpStartProgram, vixproto.OpListProcessesEx, vixproto.OpTerminateProcess, vixproto.OpReadEnvVariables,
		vixproto.OpListFiles, vixproto.OpCreateDirectoryEx, vixproto.OpDeleteFileEx, vixproto.OpDeleteDirectoryEx,
		vixproto.OpMoveFileEx, vixproto.OpMoveDirectory, vixproto.OpCreateTempFileEx, vixproto.OpCreateTempDirectory,
		vixproto.OpSetFileAttributes, vixproto.OpValidateCredentials, vixproto.OpAcquireCredentials, vixproto.OpReleaseCredentials,
		vixproto.OpHgfsSendPacket, vixproto.OpInitiateTransferFrom, vixproto.OpInitiateTransferTo:
	case vixproto.OpLegacyRunProgram, vixproto.OpLegacyListProcesses, vixproto.OpLegacyListDirectory,
		vixproto.OpLegacyGetFileInfo, vixproto.OpLegacyKillProcess, vixproto.OpLegacyCheckUserAccount:
		return vixproto.ErrNotSupported, 0, nil
	default:
		return vixproto.ErrUnrecognizedCommand, 0, nil
	}
	// Only types that carry a secret the guest verifies. ROOT and
	// CONSOLE_USER (CVE-2023-20867), SAML (until a verifier exists),
	// tickets, SSPI and everything else are refused.
	if req.CredType != vixproto.CredNamePassword && req.CredType != vixproto.CredNamePasswordObfusc {
		s.lg().Warn("guest operation refused: unsupported credential type", "op", req.OpCode, "credType", req.CredType)
		return vixproto.ErrNotSupported, 0, nil
	}
	// A malformed body is refused before any helper or PAM runs (as
	// open-vm-tools parses before it impersonates).
	if err := vixproto.CheckBody(req.OpCode, req.Body); err != nil {
		e, ok := err.(vixproto.Error)
		if !ok {
			e = vixproto.ErrInvalidMessageBody
		}
		return e, 0, nil
	}
	cred, err := vixproto.DecodeNamePassword(req.Cred)
	if err != nil {
		s.lg().Warn("guest operation refused: undecodable credential", "op", req.OpCode)
		return vixproto.ErrInvalidLoginCredentials, 0, nil
	}
	name := cred.Name
	digest := s.credDigest(cred.Name, cred.Password)
	cred.Wipe()
	if s.limited(name) {
		s.lg().Warn("guest operation refused: too many failed logins", "user", name, "op", req.OpCode)
		return vixproto.ErrInvalidLoginCredentials, 0, nil
	}
	msg := req.Raw()
	if op := req.OpCode; op == vixproto.OpListProcessesEx || op == vixproto.OpAcquireCredentials || op == vixproto.OpReleaseCredentials {
		// Authentication only; the daemon answers.
		msg = vixproto.WithOpCode(msg, vixproto.OpValidateCredentials)
	}
	var e vixproto.Error
	var addl uint32
	var payload []byte
	switch req.OpCode {
	case vixproto.OpHgfsSendPacket:
		e, addl, payload = s.hgfs(ctx, req, msg, name, digest)
	case vixproto.OpInitiateTransferFrom, vixproto.OpInitiateTransferTo:
		e, addl, payload = s.initiate(ctx, req, msg, name, digest)
	default:
		e, addl, payload = s.runHelper(ctx, req, msg, name)
	}
	clear(msg)
	if e == vixproto.ErrInvalidLoginCredentials || (req.OpCode == vixproto.OpHgfsSendPacket && e == vixproto.ErrGuestUserPermissions) {
		s.failed(name)
		s.lg().Warn("guest operation login failed", "user", name, "op", req.OpCode)
		return e, addl, payload
	}
	if e != 0 {
		return e, addl, payload
	}
	s.succeeded(name)
	switch req.OpCode {
	case vixproto.OpListProcessesEx:
		return s.listProcesses(req, name)
	case vixproto.OpAcquireCredentials, vixproto.OpReleaseCredentials:
		// Windows only in open-vm-tools; a Linux guest answers 6.
		return vixproto.ErrNotSupported, 0, nil
	}
	return e, addl, payload
}

func (s *Service) limited(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fails[name]
	if f == nil {
		return false
	}
	if s.now().Sub(f.last) > FailureWindow {
		delete(s.fails, name)
		return false
	}
	return f.n >= MaxFailures
}

func (s *Service) failed(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails == nil {
		s.fails = map[string]*failures{}
	}
	f := s.fails[name]
	if f == nil || s.now().Sub(f.last) > FailureWindow {
		f = &failures{}
		s.fails[name] = f
	}
	f.n++
	f.last = s.now()
}

func (s *Service) succeeded(name string) {
	s.mu.Lock()
	delete(s.fails, name)
	s.mu.Unlock()
}

// runHelper runs vmware-vix-helper with msg on its standard input and
// returns its reply. For StartProgram a waiter goroutine keeps reading
// the helper for the exit code.
func (s *Service) runHelper(ctx context.Context, req *vixproto.Request, msg []byte, user string) (vixproto.Error, uint32, []byte) {
	if s.Helper == "" {
		return vixproto.ErrFail, 0, nil
	}
	cmd := exec.Command(s.Helper)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return vixproto.ErrFail, 0, nil
	}
	if err := cmd.Start(); err != nil {
		s.lg().Error("cannot start the guest-operations helper", "helper", s.Helper, "err", err)
		return vixproto.ErrFail, 0, nil
	}
	kind, reply, err := helper.ReadFrame(out, vixproto.MaxRequestSize)
	if err != nil || kind != helper.FrameReply {
		cmd.Wait()
		s.lg().Error("guest-operations helper failed", "err", err, "stderr", stderr.String())
		return vixproto.ErrFail, 0, nil
	}
	e, addl, payload, _, perr := vixproto.ParseReply(reply)
	if perr != nil {
		cmd.Wait()
		return vixproto.ErrFail, 0, nil
	}
	if req.OpCode != vixproto.OpStartProgram || e != 0 {
		io.Copy(io.Discard, out)
		cmd.Wait()
		if stderr.Len() > 0 {
			s.lg().Debug("guest-operations helper", "stderr", stderr.String())
		}
		return e, addl, payload
	}
	s.started(req, user, payload, out, cmd)
	return e, addl, payload
}

func (s *Service) started(req *vixproto.Request, user string, pidText []byte, out io.Reader, cmd *exec.Cmd) {
	p, _ := vixproto.ParseStartProgram(req.Body)
	var pid uint64
	fmt.Sscan(string(pidText), &pid)
	pr := &proc{Process: vixproto.Process{Pid: pid, User: user, Start: s.now().Unix()}}
	if p != nil {
		pr.Cmd = cmdName(p.ProgramPath)
		pr.CmdLine = `"` + p.ProgramPath + `"`
		if p.Arguments != "" {
			pr.CmdLine += " " + p.Arguments
		}
	}
	closer, _ := out.(io.Closer)
	s.mu.Lock()
	s.reap()
	s.procs = append(s.procs, pr)
	if s.pipes == nil {
		s.pipes = map[io.Closer]bool{}
	}
	if closer != nil {
		s.pipes[closer] = true
	}
	s.mu.Unlock()
	s.waiters.Go(func() {
		code := int32(-1)
		kind, b, err := helper.ReadFrame(out, 64)
		if err == nil && kind == helper.FrameExit {
			var c int32
			if _, err := fmt.Sscan(string(b), &c); err == nil {
				code = c
			}
		}
		s.mu.Lock()
		stopped := s.stopped
		delete(s.pipes, closer)
		s.mu.Unlock()
		if stopped && err != nil {
			// The daemon is stopping: the program (and its waiter, the
			// helper) go on without us, as they outlive open-vm-tools'.
			cmd.Process.Release()
			return
		}
		cmd.Wait()
		s.mu.Lock()
		pr.exited, pr.ExitCode, pr.End = true, code, s.now().Unix()
		s.mu.Unlock()
	})
}

// stop lets the waiters go: their pipes are closed, so they return
// without waiting for programs still running.
func (s *Service) stop() {
	s.mu.Lock()
	s.stopped = true
	for c := range s.pipes {
		c.Close()
	}
	s.mu.Unlock()
	s.waiters.Wait()
	s.stopXfer()
}

func cmdName(path string) string {
	if i := bytes.LastIndexByte([]byte(path), '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// reap drops exited programs older than ExitedRetention; s.mu is held.
func (s *Service) reap() {
	keep := s.procs[:0]
	for _, p := range s.procs {
		if p.exited && s.now().Unix()-p.End > int64(ExitedRetention/time.Second) {
			continue
		}
		keep = append(keep, p)
	}
	clear(s.procs[len(keep):])
	s.procs = keep
}

// toolsProperties answers Vix_1_Get_ToolsProperties: as the relayed
// reply, but without the NUL (open-vm-tools answers this command with the
// string's length, not length+1).
func (s *Service) toolsProperties() []byte {
	r := vixproto.Reply(0, 0, s.toolsPropertiesPayload())
	return r[:len(r)-1]
}

// toolsPropertiesPayload is the base64 property list, with the
// properties open-vm-tools sends on Linux, in its order: OS full and
// short names, product name, tools version, host name, API options
// (GET_HANDLE_STATE), OS family (Linux), package list (empty), the
// [powerops] scripts tools.conf sets, temp dir, word size, the shared
// folders' mount point, and the *_ENABLED set, valued as open-vm-tools
// values them: each API's "disabled" flag.
func (s *Service) toolsPropertiesPayload() []byte {
	var conf *toolsconf.File
	if s.Conf != nil {
		conf = s.Conf()
	}
	var short, full string
	if s.OS != nil {
		short, full = s.OS()
	}
	host, _ := os.Hostname()
	str := func(id int32, v string) vixproto.Property {
		return vixproto.Property{ID: id, Type: vixproto.PropString, Str: v}
	}
	num := func(id int32, v int64) vixproto.Property {
		return vixproto.Property{ID: id, Type: vixproto.PropInt32, Int: v}
	}
	props := []vixproto.Property{
		str(4503, full), str(4520, short), str(4511, "VMware Tools"), str(4500, s.ToolsVersion), str(4505, host),
		num(4501, 1), num(4502, 1), str(4504, ""),
	}
	for _, sc := range []struct {
		id  int32
		key string
	}{{4506, "poweroff-script"}, {4508, "resume-script"}, {4507, "poweron-script"}, {4509, "suspend-script"}} {
		if v, ok := conf.Lookup("powerops", sc.key); ok {
			props = append(props, str(sc.id, v))
		}
	}
	props = append(props, str(203, os.TempDir()), num(4519, int64(wordSize())), str(4525, "/mnt/hgfs"))
	for i, api := range enabledProps {
		props = append(props, vixproto.Property{ID: 4540 + int32(i), Type: vixproto.PropBool, Bool: apiDisabled(conf, api)})
	}
	var b []byte
	for _, p := range props {
		b = vixproto.AppendProperty(b, p)
	}
	return []byte(base64.StdEncoding.EncodeToString(b))
}

func wordSize() int {
	if runtime.GOARCH == "386" || runtime.GOARCH == "arm" {
		return 32
	}
	return 64
}
