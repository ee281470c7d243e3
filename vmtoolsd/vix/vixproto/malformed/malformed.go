// Package malformed makes malformed VIX requests, each with the error a
// guest must answer, for the bad-input tests of vmtoolsd (vmtoolsd/vix
// TestBadInput, internal/e2e TestBadInputVmtoolsd): truncated messages,
// lengths that claim more than was sent or more than VIX allows, wrong
// header lengths, wrong counts in bodies, strings without their NUL, and
// unknown opcodes. None carries a body that could reach authentication,
// so a guest answers every one without running PAM.
package malformed

import (
	"encoding/binary"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
)

// Kinds is the number of kinds Request cycles through.
const Kinds = 8

// Request returns the i-th malformed request (kind i%Kinds, varied by i)
// with the credential of user/password, and the VIX error the guest must
// answer.
func Request(i int, user, password string) (msg []byte, want vixproto.Error) {
	cred := vixproto.NamePasswordCred(user, []byte(password))
	le := binary.LittleEndian
	mk := func(op uint32, body []byte) []byte {
		m, err := vixproto.NewRequest(op, 0, 0, vixproto.CredNamePassword, body, cred)
		if err != nil {
			panic(err) // the bodies here are small
		}
		return m
	}
	path := "/tmp/" + string(rune('a'+i%26))
	good := mk(vixproto.OpDeleteFileEx, (&vixproto.FileOp{Op: vixproto.OpDeleteFileEx, Path: path}).Encode())
	switch i % Kinds {
	case 0: // truncated anywhere (a single missing final NUL is restored by the guest: cut at least 2)
		return good[:i%(len(good)-1)], vixproto.ErrInvalidMessageHeader
	case 1: // totalMessageLength claims more than was sent
		le.PutUint32(good[6:], uint32(len(good)+1+i%70000))
		return good, vixproto.ErrInvalidMessageHeader
	case 2: // oversized: lengths beyond VIX's 16 MiB sanity limit
		le.PutUint32(good[6:], 16<<20+uint32(i))
		le.PutUint32(good[14:], 16<<20+uint32(i)-51-uint32(len(cred)))
		return good, vixproto.ErrInvalidMessageHeader
	case 3: // wrong header length
		le.PutUint32(good[10:], uint32(23+i%28))
		return good, vixproto.ErrInvalidMessageHeader
	case 4: // wrong count: more pids than the body holds
		body := (&vixproto.ListProcesses{Pids: []uint64{1, 2}}).Encode()
		le.PutUint32(body[8:], uint32(3+i%1000))
		return mk(vixproto.OpListProcessesEx, body), vixproto.ErrInvalidMessageBody
	case 5: // wrong count: environment variables
		body := (&vixproto.StartProgram{ProgramPath: "/bin/true", Env: []string{"A=1"}}).Encode()
		le.PutUint32(body[13:], uint32(2+i%100)) // numEnvVars
		return mk(vixproto.OpStartProgram, body), vixproto.ErrInvalidMessageBody
	case 6: // missing terminator: the path's NUL replaced
		body := (&vixproto.FileOp{Op: vixproto.OpDeleteFileEx, Path: path}).Encode()
		body[len(body)-1] = 'x'
		return mk(vixproto.OpDeleteFileEx, body), vixproto.ErrInvalidMessageBody
	default: // unknown opcode (none of the dispatcher's, never reused numbers)
		return mk(uint32(1000+i%50000), nil), vixproto.ErrUnrecognizedCommand
	}
}
