package vmxsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// GuestReply is a guest's answer to one VIX request.
type GuestReply struct {
	Err     vixproto.Error
	Addl    uint32
	Payload []byte
}

// Guest sends one VIX guest operation as the VMX relays it
// (Vix_1_Relayed_Command over TCLO, credential type 1) and returns the
// guest's answer.
func (c *Ctl) Guest(ctx context.Context, user, password string, op uint32, body []byte) (GuestReply, error) {
	pw := []byte(password)
	cred := vixproto.NamePasswordCred(user, pw)
	clear(pw)
	msg, err := vixproto.NewRequest(op, 0, 0, vixproto.CredNamePassword, body, cred)
	clear(cred)
	if err != nil {
		return GuestReply{}, err
	}
	out, err := c.TCLO(ctx, string(vixproto.Relayed("ctl", msg)))
	if err != nil {
		return GuestReply{}, err
	}
	rest, ok := strings.CutPrefix(out, "OK ")
	if !ok {
		return GuestReply{}, fmt.Errorf("guest: %q", out)
	}
	e, a, p, _, err := vixproto.ParseReply([]byte(rest))
	if err != nil {
		return GuestReply{}, fmt.Errorf("guest reply %q: %w", rest, err)
	}
	return GuestReply{Err: e, Addl: a, Payload: p}, nil
}

// GuestCommand is `vmxsim ctl guest USER:PASSWORD VERB ARGS...`: validate,
// start PATH [ARGS], ps [PID...], kill PID, ls PATH, mkdir PATH, rm PATH,
// rmdir PATH, getenv [NAME...]. It prints the guest's payload (decoded
// entries for ps and ls, one per line), or fails with the VIX error.
func GuestCommand(ctx context.Context, c *Ctl, args []string, out io.Writer) error {
	if len(args) < 2 || !strings.Contains(args[0], ":") {
		return errors.New("guest needs USER:PASSWORD and a verb (validate, start, ps, kill, ls, mkdir, rm, rmdir, getenv)")
	}
	user, pw, _ := strings.Cut(args[0], ":")
	verb, rest := args[1], args[2:]
	arg := func() string {
		if len(rest) == 0 {
			return ""
		}
		return rest[0]
	}
	var op uint32
	var body []byte
	switch verb {
	case "validate":
		op = vixproto.OpValidateCredentials
	case "start":
		op, body = vixproto.OpStartProgram, (&vixproto.StartProgram{ProgramPath: arg(), Arguments: strings.Join(rest[min(1, len(rest)):], " ")}).Encode()
	case "ps":
		lp := &vixproto.ListProcesses{}
		for _, a := range rest {
			n, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return fmt.Errorf("pid %q: %v", a, err)
			}
			lp.Pids = append(lp.Pids, n)
		}
		op, body = vixproto.OpListProcessesEx, lp.Encode()
	case "kill":
		n, err := strconv.ParseUint(arg(), 10, 64)
		if err != nil {
			return fmt.Errorf("pid %q: %v", arg(), err)
		}
		op, body = vixproto.OpTerminateProcess, (&vixproto.KillProcess{Pid: n}).Encode()
	case "ls":
		op, body = vixproto.OpListFiles, (&vixproto.ListFiles{Path: arg(), MaxResults: 1 << 20}).Encode()
	case "mkdir", "rm", "rmdir":
		op = map[string]uint32{"mkdir": vixproto.OpCreateDirectoryEx, "rm": vixproto.OpDeleteFileEx, "rmdir": vixproto.OpDeleteDirectoryEx}[verb]
		body = (&vixproto.FileOp{Op: op, Path: arg()}).Encode()
	case "getenv":
		op, body = vixproto.OpReadEnvVariables, (&vixproto.ReadEnv{Names: rest}).Encode()
	default:
		return fmt.Errorf("unknown guest verb %q", verb)
	}
	r, err := c.Guest(ctx, user, pw, op, body)
	if err != nil {
		return err
	}
	if r.Err != vixproto.OK {
		return fmt.Errorf("%v (additional error %d)", r.Err, r.Addl)
	}
	switch verb {
	case "ps":
		list, err := vixproto.JoinProcChunks(r.Payload, 16<<20, func(key, offset uint32) ([]byte, error) {
			r, err := c.Guest(ctx, user, pw, vixproto.OpListProcessesEx, (&vixproto.ListProcesses{Key: key, Offset: offset}).Encode())
			if err == nil && r.Err != vixproto.OK {
				err = r.Err
			}
			return r.Payload, err
		})
		if err != nil {
			return fmt.Errorf("process list: %w", err)
		}
		for _, p := range vixproto.ParseProcesses(string(list)) {
			fmt.Fprintf(out, "%d\t%s\t%d\t%d\t%d\t%s\n", p.Pid, p.User, p.Start, p.End, p.ExitCode, p.CmdLine)
		}
	case "ls":
		for _, f := range vixproto.ParseListFilesResult(string(r.Payload)).Files {
			fmt.Fprintf(out, "%o\t%d\t%d\t%d\t%s\n", f.Mode, f.UID, f.GID, f.Size, f.Name)
		}
	case "getenv":
		for _, e := range vixproto.ParseEnv(string(r.Payload)) {
			fmt.Fprintln(out, e)
		}
	default:
		if len(r.Payload) > 0 {
			fmt.Fprintln(out, string(r.Payload))
		}
	}
	return nil
}
