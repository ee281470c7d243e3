package vsphere

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// guestOps relays vSphere's guest operations to the guest's tools as
// VIX requests over TCLO (Vix_1_Relayed_Command), as hostd and the VMX
// do, and maps the VIX answers to the faults hostd returns
// (docs/guestops.md). Its managers replace vcsim's, which run docker and
// panic for a VM without a container. They opt out of vcsim's per-object
// lock (no-op Lock/Unlock): a guest operation can take 20 s and must not
// hold every other VM's calls.
type guestOps struct {
	v    *FrontEnd
	reqs atomic.Uint64
	xfer transfers
}

type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

type guestProcessManager struct {
	mo.GuestProcessManager
	noLock
	g *guestOps
}

type guestFileManager struct {
	mo.GuestFileManager
	noLock
	g *guestOps
}

type guestAuthManager struct {
	mo.GuestAuthManager
	noLock
	g *guestOps
}

// installGuestOps puts the managers in vcsim's registry in place of its
// own, and gives the GuestOperationsManager an authManager.
func (v *FrontEnd) installGuestOps(gomRef types.ManagedObjectReference) *guestOps {
	g := &guestOps{v: v}
	reg := v.model.Map()
	gom := reg.Get(gomRef).(*simulator.GuestOperationsManager)
	pm := &guestProcessManager{g: g}
	pm.Self = *gom.ProcessManager
	reg.Put(pm)
	fm := &guestFileManager{g: g}
	fm.Self = *gom.FileManager
	reg.Put(fm)
	am := &guestAuthManager{g: g}
	am.Self = types.ManagedObjectReference{Type: "GuestAuthManager", Value: "guestOperationsAuthManager"}
	reg.Put(am)
	gom.AuthManager = &am.Self
	return g
}

// call sends one VIX request for vm and returns the payload, or the
// fault hostd would return.
func (g *guestOps) call(vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, op uint32, body []byte) ([]byte, types.BaseMethodFault) {
	return g.callFlags(vm, auth, op, 0, body)
}

// callFlags is call with the VIX commonFlags (FlagGuestReturnsBinary
// for HGFS packets).
func (g *guestOps) callFlags(vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, op uint32, flags uint8, body []byte) ([]byte, types.BaseMethodFault) {
	v := g.v.lookup(vm)
	if v == nil {
		return nil, &types.ManagedObjectNotFound{Obj: vm}
	}
	if v.core.PowerState() != vmxsim.PoweredOn {
		return nil, &types.InvalidPowerState{RequestedState: types.VirtualMachinePowerStatePoweredOn, ExistingState: v.powerState()}
	}
	if !v.core.State().Tools.Running || !v.core.HasToolsChannel() {
		return nil, new(types.GuestOperationsUnavailable)
	}
	var credType uint32
	var cred []byte
	switch a := auth.(type) {
	case *types.NamePasswordAuthentication:
		if a.Username == "" {
			return nil, new(types.InvalidGuestLogin)
		}
		pw := []byte(a.Password)
		credType, cred = vixproto.CredNamePassword, vixproto.NamePasswordCred(a.Username, pw)
		clear(pw)
	case *types.SAMLTokenAuthentication:
		// The token goes to the guest, which decides (ours refuses SAML).
		credType = vixproto.CredSAMLBearerToken
		ob := vixproto.ObfuscateNamePassword(a.Token, []byte(a.Username))
		cred = append(append(make([]byte, 8), ob...), 0)
	case nil:
		return nil, new(types.InvalidGuestLogin)
	default:
		return nil, new(types.OperationNotSupportedByGuest)
	}
	msg, err := vixproto.NewRequest(op, flags, 0, credType, body, cred)
	clear(cred)
	if err != nil {
		return nil, &types.SystemError{Reason: fmt.Sprintf("vix error codes = (%d, 0).\n", vixproto.ErrArgumentTooBig)}
	}
	name := "govmtools-" + strconv.FormatUint(g.reqs.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reply, err := v.core.SendTCLO(ctx, string(vixproto.Relayed(name, msg)))
	clear(msg)
	if err != nil {
		v.lg.Warn("vsphere: guest operation not delivered", "op", op, "err", err)
		return nil, new(types.GuestOperationsUnavailable)
	}
	rest, ok := strings.CutPrefix(string(reply), "OK ")
	if !ok {
		// Tools that do not know the command (ERROR Unknown Command).
		return nil, new(types.GuestComponentsOutOfDate)
	}
	code, addl, payload, _, perr := vixproto.ParseReply([]byte(rest))
	if perr != nil {
		return nil, &types.SystemError{Reason: "malformed guest reply"}
	}
	if code != vixproto.OK {
		return nil, vixFault(code&0xffff, addl)
	}
	return payload, nil
}

// vixFault maps a VIX error to the fault hostd returns; codes without an
// observed mapping become SystemError "vix error codes = (e, a).\n".
func vixFault(code vixproto.Error, addl uint32) types.BaseMethodFault {
	switch code {
	case vixproto.ErrFileNotFound:
		return &types.FileNotFound{}
	case vixproto.ErrFileAccess:
		return &types.CannotAccessFile{}
	case vixproto.ErrGuestUserPermissions:
		return new(types.GuestPermissionDenied)
	case vixproto.ErrInvalidLoginCredentials:
		return new(types.InvalidGuestLogin)
	case vixproto.ErrFileAlreadyExists:
		return &types.FileAlreadyExists{}
	case vixproto.ErrNotAFile:
		return &types.NotAFile{}
	case vixproto.ErrNotADirectory:
		return &types.NotADirectory{}
	case vixproto.ErrDirectoryNotEmpty:
		return &types.DirectoryNotEmpty{}
	case vixproto.ErrFileNameTooLong:
		return &types.FileNameTooLong{}
	case vixproto.ErrInvalidArg:
		return new(types.InvalidArgument)
	case vixproto.ErrNoSuchProcess:
		return new(types.GuestProcessNotFound)
	case vixproto.ErrOperationDisabled:
		return new(types.OperationDisabledByGuest)
	case vixproto.ErrNotSupported, vixproto.ErrOpNotSupportedOnGuest, vixproto.ErrViOpNotSupportedOnGuest:
		return new(types.OperationNotSupportedByGuest)
	case vixproto.ErrUnrecognizedCommand:
		return new(types.GuestComponentsOutOfDate)
	case vixproto.ErrTooManyLogons:
		return new(types.TooManyGuestLogons)
	}
	return &types.SystemError{Reason: fmt.Sprintf("vix error codes = (%d, %d).\n", code, addl)}
}

func fault(f types.BaseMethodFault) *soap.Fault { return simulator.Fault("", f) }

func (m *guestProcessManager) StartProgramInGuest(ctx *simulator.Context, req *types.StartProgramInGuest) soap.HasFault {
	body := new(methods.StartProgramInGuestBody)
	sp := &vixproto.StartProgram{ProgramPath: req.Spec.GetGuestProgramSpec().ProgramPath, Arguments: req.Spec.GetGuestProgramSpec().Arguments,
		WorkingDir: req.Spec.GetGuestProgramSpec().WorkingDirectory, Env: req.Spec.GetGuestProgramSpec().EnvVariables}
	p, f := m.g.call(req.Vm, req.Auth, vixproto.OpStartProgram, sp.Encode())
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	pid, err := strconv.ParseInt(strings.TrimSpace(string(p)), 10, 64)
	if err != nil {
		body.Fault_ = fault(&types.SystemError{Reason: "guest answered no pid"})
		return body
	}
	body.Res = &types.StartProgramInGuestResponse{Returnval: pid}
	return body
}

func (m *guestProcessManager) ListProcessesInGuest(ctx *simulator.Context, req *types.ListProcessesInGuest) soap.HasFault {
	body := new(methods.ListProcessesInGuestBody)
	lp := &vixproto.ListProcesses{}
	for _, pid := range req.Pids {
		lp.Pids = append(lp.Pids, uint64(pid))
	}
	p, f := m.g.listProcesses(req.Vm, req.Auth, lp)
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	res := &types.ListProcessesInGuestResponse{}
	for _, pr := range vixproto.ParseProcesses(string(p)) {
		info := types.GuestProcessInfo{Name: pr.Cmd, Pid: int64(pr.Pid), Owner: pr.User, CmdLine: pr.CmdLine,
			StartTime: time.Unix(pr.Start, 0).UTC(), ExitCode: pr.ExitCode}
		if pr.End != 0 {
			t := time.Unix(pr.End, 0).UTC()
			info.EndTime = &t
		}
		res.Returnval = append(res.Returnval, info)
	}
	body.Res = res
	return body
}

// maxProcList bounds a chunked process list the guest announces.
const maxProcList = 16 << 20

// errFault stops vixproto.JoinProcChunks when a chunk's call faulted.
var errFault = errors.New("fault")

// listProcesses sends ListProcessesEx and, when the guest answers with
// the first chunk of a long list, asks for the rest by key and offset
// (vixproto.JoinProcChunks), as the VMX does.
func (g *guestOps) listProcesses(vm types.ManagedObjectReference, auth types.BaseGuestAuthentication, lp *vixproto.ListProcesses) ([]byte, types.BaseMethodFault) {
	p, f := g.call(vm, auth, vixproto.OpListProcessesEx, lp.Encode())
	if f != nil {
		return nil, f
	}
	out, err := vixproto.JoinProcChunks(p, maxProcList, func(key, offset uint32) ([]byte, error) {
		p, f = g.call(vm, auth, vixproto.OpListProcessesEx, (&vixproto.ListProcesses{Key: key, Offset: offset}).Encode())
		if f != nil {
			return nil, errFault
		}
		return p, nil
	})
	switch {
	case err == errFault:
		return nil, f
	case err != nil:
		return nil, &types.SystemError{Reason: "malformed process list chunks: " + err.Error()}
	}
	return out, nil
}

func (m *guestProcessManager) TerminateProcessInGuest(ctx *simulator.Context, req *types.TerminateProcessInGuest) soap.HasFault {
	body := new(methods.TerminateProcessInGuestBody)
	if _, f := m.g.call(req.Vm, req.Auth, vixproto.OpTerminateProcess, (&vixproto.KillProcess{Pid: uint64(req.Pid)}).Encode()); f != nil {
		if pf, ok := f.(*types.GuestProcessNotFound); ok {
			pf.Pid = req.Pid
		}
		body.Fault_ = fault(f)
		return body
	}
	body.Res = new(types.TerminateProcessInGuestResponse)
	return body
}

func (m *guestProcessManager) ReadEnvironmentVariableInGuest(ctx *simulator.Context, req *types.ReadEnvironmentVariableInGuest) soap.HasFault {
	body := new(methods.ReadEnvironmentVariableInGuestBody)
	p, f := m.g.call(req.Vm, req.Auth, vixproto.OpReadEnvVariables, (&vixproto.ReadEnv{Names: req.Names}).Encode())
	if f != nil {
		body.Fault_ = fault(f)
		return body
	}
	body.Res = &types.ReadEnvironmentVariableInGuestResponse{Returnval: vixproto.ParseEnv(string(p))}
	return body
}

func (m *guestAuthManager) ValidateCredentialsInGuest(ctx *simulator.Context, req *types.ValidateCredentialsInGuest) soap.HasFault {
	body := new(methods.ValidateCredentialsInGuestBody)
	if _, f := m.g.call(req.Vm, req.Auth, vixproto.OpValidateCredentials, nil); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	body.Res = new(types.ValidateCredentialsInGuestResponse)
	return body
}

func (m *guestAuthManager) AcquireCredentialsInGuest(ctx *simulator.Context, req *types.AcquireCredentialsInGuest) soap.HasFault {
	body := new(methods.AcquireCredentialsInGuestBody)
	w := make([]byte, 8)
	for i := range 8 {
		w[i] = byte(uint64(req.SessionID) >> (8 * i))
	}
	_, f := m.g.call(req.Vm, req.RequestedAuth, vixproto.OpAcquireCredentials, w)
	if f == nil {
		f = new(types.OperationNotSupportedByGuest) // no ticket comes back from a Linux guest
	}
	body.Fault_ = fault(f)
	return body
}

func (m *guestAuthManager) ReleaseCredentialsInGuest(ctx *simulator.Context, req *types.ReleaseCredentialsInGuest) soap.HasFault {
	body := new(methods.ReleaseCredentialsInGuestBody)
	if _, f := m.g.call(req.Vm, req.Auth, vixproto.OpReleaseCredentials, nil); f != nil {
		body.Fault_ = fault(f)
		return body
	}
	body.Res = new(types.ReleaseCredentialsInGuestResponse)
	return body
}
