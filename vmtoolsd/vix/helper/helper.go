// Package helper is vmware-vix-helper, the process in which every
// authenticated guest operation runs (docs/guestops.md). vmtoolsd starts
// it per request with the validated VIX message on standard input; the
// helper checks the credential with PAM (service vmtoolsd), becomes the
// user (supplementary groups, gid, uid, all three of each, so no way
// back to root; USER, HOME and SHELL from the passwd entry), performs
// the operation with guestops and writes the reply as frames on standard
// output. For StartProgram it stays as the program's waiter: a first
// frame carries the pid, a second, when the program ends, its exit code.
// In transfer mode (TransferEnv set) it authenticates one InitiateFile-
// Transfer request (or HGFS packet) and then serves that transfer's HGFS
// packets, framed on its pipes, until vmtoolsd closes its input.
//
// It is a separate binary because PAM needs cgo and setuid applies to
// every thread of a Go process: the daemon stays CGO_ENABLED=0 and never
// changes its own credentials.
package helper

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/govmtools/govmtools/vmtoolsd/vix/guestops"
	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Frame kinds on the helper's standard output.
const (
	FrameReply = 'R' // the VIX reply text (vixproto.Reply)
	FrameExit  = 'X' // decimal exit code of a started program
)

// WriteFrame writes one frame: kind, u32 little-endian length, data.
func WriteFrame(w io.Writer, kind byte, data []byte) error {
	b := make([]byte, 5, 5+len(data))
	b[0] = kind
	binary.LittleEndian.PutUint32(b[1:], uint32(len(data)))
	_, err := w.Write(append(b, data...))
	return err
}

// ReadFrame reads one frame of at most max bytes.
func ReadFrame(r io.Reader, max int) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[1:])
	if uint64(n) > uint64(max) {
		return 0, nil, fmt.Errorf("helper frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

// Authenticator checks a login (PAM in the binary, whose main adapts
// vmtoolsd/vix/pamauth: this package stays free of cgo, since vmtoolsd
// imports it for the frames). An error wrapping ErrUnavailable is an
// infrastructure failure (VIX 1); any other error a refused login (3050).
type Authenticator func(user string, password []byte) error

// ErrUnavailable marks an authentication that could not be attempted.
var ErrUnavailable = errors.New("authentication unavailable")

// Main runs one request: stdin holds the VIX message. With TransferEnv
// set it serves a file transfer instead (see serveTransfer).
func Main(stdin io.Reader, stdout, stderr io.Writer, auth Authenticator) int {
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	if v, set := os.LookupEnv(TransferEnv); set {
		t, ok := DecodeTransfer(v)
		if !ok {
			fmt.Fprintln(stderr, "vix-helper: bad", TransferEnv)
			return 2
		}
		return serveTransfer(stdin, out, stderr, auth, t)
	}
	msg, err := io.ReadAll(io.LimitReader(stdin, vixproto.MaxRequestSize+1))
	if err != nil {
		fmt.Fprintln(stderr, "vix-helper: reading the request:", err)
		return 2
	}
	defer clear(msg)
	reply := func(r guestops.Result) {
		WriteFrame(out, FrameReply, vixproto.Reply(r.Err, r.Errno, r.Payload))
		out.Flush()
	}
	req, acct, r := login(msg, stderr, auth)
	if req == nil {
		reply(r)
		return 0
	}
	env := &guestops.Env{Environ: userEnviron(os.Environ(), acct), DaemonPid: os.Getppid(), User: acct.name}
	if req.OpCode == vixproto.OpHgfsSendPacket {
		// Packets are served only in a transfer (TransferEnv).
		WriteFrame(out, FrameReply, vixproto.BinaryReply(vixproto.ErrGuestUserPermissions, 0, nil))
		return 0
	}
	if req.OpCode != vixproto.OpStartProgram {
		reply(env.Do(req))
		return 0
	}
	p, err := vixproto.ParseStartProgram(req.Body)
	if err != nil {
		reply(guestops.Result{Err: err.(vixproto.Error), Payload: []byte("-1")})
		return 0
	}
	started, r := env.Start(p, acct.home)
	if started == nil {
		r.Payload = []byte("-1")
		reply(r)
		return 0
	}
	r.Payload = []byte(strconv.Itoa(started.Pid))
	reply(r)
	code := started.Wait()
	WriteFrame(out, FrameExit, []byte(strconv.Itoa(code)))
	return 0
}

// login decodes msg, checks its credential with auth and becomes the
// user. On failure req is nil and r is the reply.
func login(msg []byte, stderr io.Writer, auth Authenticator) (req *vixproto.Request, acct *account, r guestops.Result) {
	req, err := vixproto.Decode(msg)
	if err != nil {
		return nil, nil, guestops.Result{Err: err.(vixproto.Error)}
	}
	if req.CredType != vixproto.CredNamePassword && req.CredType != vixproto.CredNamePasswordObfusc {
		return nil, nil, guestops.Result{Err: vixproto.ErrNotSupported}
	}
	cred, err := vixproto.DecodeNamePassword(req.Cred)
	if err != nil {
		return nil, nil, guestops.Result{Err: vixproto.ErrInvalidLoginCredentials}
	}
	aerr := auth(cred.Name, cred.Password)
	cred.Wipe()
	clear(req.Cred)
	if aerr != nil {
		fmt.Fprintf(stderr, "vix-helper: login of %q refused: %v\n", cred.Name, aerr)
		code := vixproto.ErrInvalidLoginCredentials
		if errors.Is(aerr, ErrUnavailable) {
			code = vixproto.ErrFail
		}
		return nil, nil, guestops.Result{Err: code}
	}
	acct, err = become(cred.Name)
	if err != nil {
		fmt.Fprintf(stderr, "vix-helper: cannot become %q: %v\n", cred.Name, err)
		return nil, nil, guestops.Result{Err: vixproto.ErrInvalidLoginCredentials}
	}
	return req, acct, guestops.Result{}
}

// Frame kinds vmtoolsd writes to a transfer helper.
const (
	// FrameRequest is the first frame: the handle (u32 little-endian)
	// an 84 packet is confined to (0 for an initiate), then the VIX
	// request whose credential the helper authenticates.
	FrameRequest = 'Q'
	// FramePacket is each later frame: the handle, then one HGFS
	// request packet; the helper answers a FrameReply holding the raw
	// HGFS reply packet.
	FramePacket = 'P'
)

// MaxPacketFrame bounds a FramePacket: a handle and an HGFS packet that
// fits one VIX request.
const MaxPacketFrame = 4 + vixproto.MaxRequestSize

// TransferEnv names the environment variable in which vmtoolsd tells a
// helper to serve one file transfer: "<r|w>:<path>" (EncodeTransfer),
// the one path the transfer's HGFS packets may touch and whether they
// may write it.
const TransferEnv = "VIX_HGFS_TRANSFER"

// EncodeTransfer is the TransferEnv value for t (its handle is not
// part of it).
func EncodeTransfer(t guestops.Transfer) string {
	m := "r"
	if t.Write {
		m = "w"
	}
	return m + ":" + t.Path
}

// DecodeTransfer parses a TransferEnv value.
func DecodeTransfer(s string) (guestops.Transfer, bool) {
	m, path, ok := strings.Cut(s, ":")
	if !ok || (m != "r" && m != "w") || !strings.HasPrefix(path, "/") {
		return guestops.Transfer{}, false
	}
	return guestops.Transfer{Write: m == "w", Path: path}, true
}

// serveTransfer is the helper of one file transfer: the first frame
// (FrameRequest) is an initiate (188, 189) of t's path or an 84 packet,
// authenticated with PAM as every request; the helper becomes the user
// and answers it. If that succeeded it goes on serving FramePacket
// frames, each one HGFS packet on t's path, as that user and without
// asking PAM again (vmtoolsd sends only packets whose credential equals
// the one authenticated here), until its standard input ends: vmtoolsd
// closes it when the transfer's file is closed, after an idle timeout,
// when the grant expires or when it stops.
func serveTransfer(in io.Reader, out *bufio.Writer, stderr io.Writer, auth Authenticator, t guestops.Transfer) int {
	kind, data, err := ReadFrame(in, MaxPacketFrame)
	if err != nil || kind != FrameRequest || len(data) < 4 {
		fmt.Fprintln(stderr, "vix-helper: no transfer request:", err)
		return 2
	}
	defer clear(data)
	handle := binary.LittleEndian.Uint32(data)
	req, acct, r := login(data[4:], stderr, auth)
	srv := guestops.NewTransferServer(t.Path, t.Write)
	defer srv.Close()
	if req == nil {
		if len(data) >= 4+vixproto.HeaderLen && data[4+22]&vixproto.FlagGuestReturnsBinary != 0 {
			WriteFrame(out, FrameReply, vixproto.BinaryReply(r.Err, r.Errno, nil))
		} else {
			WriteFrame(out, FrameReply, vixproto.Reply(r.Err, r.Errno, r.Payload))
		}
		return 0
	}
	switch req.OpCode {
	case vixproto.OpInitiateTransferFrom, vixproto.OpInitiateTransferTo:
		r = initiate(req, t, &guestops.Env{Environ: userEnviron(os.Environ(), acct), DaemonPid: os.Getppid(), User: acct.name})
		WriteFrame(out, FrameReply, vixproto.Reply(r.Err, r.Errno, r.Payload))
		if r.Err != 0 {
			return 0
		}
	case vixproto.OpHgfsSendPacket:
		p, err := vixproto.ParseHgfsPacket(req.Body)
		if err != nil {
			WriteFrame(out, FrameReply, vixproto.BinaryReply(err.(vixproto.Error), 0, nil))
			return 0
		}
		WriteFrame(out, FrameReply, vixproto.BinaryReply(0, 0, srv.Serve(handle, p.Packet)))
	default:
		WriteFrame(out, FrameReply, vixproto.Reply(vixproto.ErrNotSupported, 0, nil))
		return 0
	}
	for {
		if err := out.Flush(); err != nil {
			return 0
		}
		kind, data, err := ReadFrame(in, MaxPacketFrame)
		if err != nil {
			return 0 // vmtoolsd ended the transfer
		}
		if kind != FramePacket || len(data) < 4 {
			fmt.Fprintf(stderr, "vix-helper: unexpected frame %q\n", kind)
			return 2
		}
		WriteFrame(out, FrameReply, srv.Serve(binary.LittleEndian.Uint32(data), data[4:]))
	}
}

// initiate runs an InitiateFileTransfer request, which must name t's
// path (the one vmtoolsd will confine the packets to).
func initiate(req *vixproto.Request, t guestops.Transfer, env *guestops.Env) guestops.Result {
	var path string
	if req.OpCode == vixproto.OpInitiateTransferTo {
		p, err := vixproto.ParseFileOp(req.OpCode, req.Body)
		if err != nil {
			return guestops.Result{Err: err.(vixproto.Error)}
		}
		path = p.Path
	} else {
		p, err := vixproto.ParseListFiles(req.Body)
		if err != nil {
			return guestops.Result{Err: err.(vixproto.Error)}
		}
		path = p.Path
	}
	if filepath.Clean(path) != t.Path || t.Write != (req.OpCode == vixproto.OpInitiateTransferTo) {
		return guestops.Result{Err: vixproto.ErrInvalidArg}
	}
	return env.Do(req)
}

type account struct {
	name, home, shell string
	uid, gid          int
}

// become switches this process to the user: supplementary groups, then
// real, effective and saved gid, then uid. Without root it only accepts
// being the user already.
func become(name string) (*account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	a := &account{name: u.Username, home: u.HomeDir, shell: loginShell(name)}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, err
	}
	if a.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() != a.uid {
			return nil, fmt.Errorf("not root: cannot switch to uid %d", a.uid)
		}
		return a, nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	groups := []int{a.gid}
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil && g != a.gid {
			groups = append(groups, g)
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return nil, err
	}
	if err := syscall.Setresgid(a.gid, a.gid, a.gid); err != nil {
		return nil, err
	}
	if err := syscall.Setresuid(a.uid, a.uid, a.uid); err != nil {
		return nil, err
	}
	if os.Geteuid() != a.uid || os.Getuid() != a.uid {
		return nil, fmt.Errorf("still uid %d after setresuid", os.Geteuid())
	}
	return a, nil
}

// loginShell reads the user's shell from /etc/passwd; /bin/sh if unknown.
func loginShell(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 7 && f[0] == name {
				return f[6]
			}
		}
	}
	return "/bin/sh"
}

// userEnviron is the daemon's environment with USER, HOME and SHELL the
// user's, as open-vm-tools' impersonation sets them.
func userEnviron(env []string, a *account) []string {
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != "USER" && k != "HOME" && k != "SHELL" && k != TransferEnv {
			out = append(out, kv)
		}
	}
	return append(out, "USER="+a.name, "HOME="+a.home, "SHELL="+a.shell)
}
