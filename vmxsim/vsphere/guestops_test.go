package vsphere

import (
	"fmt"
	"testing"

	"github.com/govmtools/govmtools/vmtoolsd/vix/vixproto"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Without tools every guest operation is GuestOperationsUnavailable
// (vcsim's own StartProgramInGuest panics for a VM without a container),
// and the front end keeps answering afterwards; the auth manager exists.
func TestGuestOpsWithoutTools(t *testing.T) {
	c := newCore(t)
	ctx := t.Context()
	v, err := New(ctx, c, Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	client, err := govmomi.NewClient(ctx, v.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(client.Client, v.VM())
	om := guest.NewOperationsManager(client.Client, vm.Reference())
	pm, err := om.ProcessManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := om.FileManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	am, err := om.AuthManager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auth := &types.NamePasswordAuthentication{Username: "u", Password: "p"}
	for range 3 {
		_, err := pm.StartProgram(ctx, auth, &types.GuestProgramSpec{ProgramPath: "/usr/bin/id"})
		if _, ok := soapFault(err).(types.GuestOperationsUnavailable); !ok {
			t.Fatalf("start program without tools: %v", err)
		}
	}
	if _, err := fm.ListFiles(ctx, auth, "/", 0, 0, ""); err == nil {
		t.Fatal("list files without tools succeeded")
	}
	if err := am.ValidateCredentials(ctx, auth); err == nil {
		t.Fatal("validate credentials without tools succeeded")
	}
	if _, err := fm.InitiateFileTransferFromGuest(ctx, auth, "/etc/hostname"); err == nil {
		t.Fatal("file transfer succeeded")
	}
}

func TestVIXFaults(t *testing.T) {
	for code, want := range map[vixproto.Error]string{
		vixproto.ErrFileNotFound:            "*types.FileNotFound",
		vixproto.ErrInvalidLoginCredentials: "*types.InvalidGuestLogin",
		vixproto.ErrGuestUserPermissions:    "*types.GuestPermissionDenied",
		vixproto.ErrFileAlreadyExists:       "*types.FileAlreadyExists",
		vixproto.ErrNotSupported:            "*types.OperationNotSupportedByGuest",
	} {
		if got := typeName(vixFault(code, 0)); got != want {
			t.Errorf("%v -> %s, want %s", code, got, want)
		}
	}
	if f, ok := vixFault(vixproto.ErrFail, 4294967291).(*types.SystemError); !ok || f.Reason != "vix error codes = (1, 4294967291).\n" {
		t.Errorf("fallback: %#v", vixFault(vixproto.ErrFail, 4294967291))
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func soapFault(err error) types.AnyType {
	if err == nil || !soap.IsSoapFault(err) {
		return nil
	}
	return soap.ToSoapFault(err).VimFault()
}
