// Package helper is vmware-vix-helper, the process in which every
// authenticated guest operation runs (docs/guestops.md). vmtoolsd starts
// it per request with the validated VIX message on standard input; the
// helper checks the credential with PAM (service vmtoolsd), becomes the
// user (supplementary groups, gid, uid, all three of each, so no way
// back to root; USER, HOME and SHELL from the passwd entry), performs
// the operation with guestops and writes the reply as frames on standard
// output. For StartProgram it stays as the program's waiter: a first
// frame carries the pid, a second, when the program ends, its exit code.
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

// Main runs one request: stdin holds the VIX message.
func Main(stdin io.Reader, stdout, stderr io.Writer, auth Authenticator) int {
	msg, err := io.ReadAll(io.LimitReader(stdin, vixproto.MaxRequestSize+1))
	if err != nil {
		fmt.Fprintln(stderr, "vix-helper: reading the request:", err)
		return 2
	}
	defer clear(msg)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	reply := func(r guestops.Result) {
		WriteFrame(out, FrameReply, vixproto.Reply(r.Err, r.Errno, r.Payload))
		out.Flush()
	}
	req, err := vixproto.Decode(msg)
	if err != nil {
		reply(guestops.Result{Err: err.(vixproto.Error)})
		return 0
	}
	if req.CredType != vixproto.CredNamePassword && req.CredType != vixproto.CredNamePasswordObfusc {
		reply(guestops.Result{Err: vixproto.ErrNotSupported})
		return 0
	}
	cred, err := vixproto.DecodeNamePassword(req.Cred)
	if err != nil {
		reply(guestops.Result{Err: vixproto.ErrInvalidLoginCredentials})
		return 0
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
		reply(guestops.Result{Err: code})
		return 0
	}
	acct, err := become(cred.Name)
	if err != nil {
		fmt.Fprintf(stderr, "vix-helper: cannot become %q: %v\n", cred.Name, err)
		reply(guestops.Result{Err: vixproto.ErrInvalidLoginCredentials})
		return 0
	}
	env := &guestops.Env{Environ: userEnviron(os.Environ(), acct), DaemonPid: os.Getppid(), User: acct.name}
	if req.OpCode == vixproto.OpHgfsSendPacket {
		r := hgfsPacket(req.Body)
		WriteFrame(out, FrameReply, vixproto.BinaryReply(r.Err, r.Errno, r.Payload))
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

// TransferEnv names the environment variable in which vmtoolsd hands
// the helper the file an HGFS packet (opcode 84) may touch:
// "<handle>:<r|w>:<path>" (see EncodeTransfer).
const TransferEnv = "VIX_HGFS_TRANSFER"

// EncodeTransfer is the TransferEnv value for t.
func EncodeTransfer(t guestops.Transfer) string {
	m := "r"
	if t.Write {
		m = "w"
	}
	return strconv.FormatUint(uint64(t.Handle), 10) + ":" + m + ":" + t.Path
}

func decodeTransfer(s string) (guestops.Transfer, bool) {
	h, rest, ok1 := strings.Cut(s, ":")
	m, path, ok2 := strings.Cut(rest, ":")
	n, err := strconv.ParseUint(h, 10, 32)
	if !ok1 || !ok2 || err != nil || (m != "r" && m != "w") || !strings.HasPrefix(path, "/") {
		return guestops.Transfer{}, false
	}
	return guestops.Transfer{Handle: uint32(n), Write: m == "w", Path: path}, true
}

// hgfsPacket serves an 84 request as the user, on the file vmtoolsd
// confined it to; without one, the packet is refused.
func hgfsPacket(body []byte) guestops.Result {
	p, err := vixproto.ParseHgfsPacket(body)
	if err != nil {
		return guestops.Result{Err: err.(vixproto.Error)}
	}
	t, ok := decodeTransfer(os.Getenv(TransferEnv))
	if !ok {
		return guestops.Result{Err: vixproto.ErrGuestUserPermissions}
	}
	return guestops.Result{Payload: guestops.HGFS(p.Packet, t)}
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
