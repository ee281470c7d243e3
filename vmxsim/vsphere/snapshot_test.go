package vsphere

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govmtools/govmtools/internal/testutil"
	"github.com/govmtools/govmtools/vmxsim"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// quiesceGuest is a guest TCLO channel in process that quiesces as
// vmtoolsd does: its events reach the core as vmbackup.eventSet RPCIs.
type quiesceGuest struct {
	core       *vmxsim.Core
	failScript bool
	done       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	frozen     bool
}

func (g *quiesceGuest) event(s string) {
	g.core.RPCI(context.Background(), vmxsim.Caller{Transport: "unix", Privileged: true}, []byte("vmbackup.eventSet "+s+"\x00"))
}

func (g *quiesceGuest) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	switch c := string(cmd); {
	case c == "reset":
		return []byte("OK ATR toolbox"), nil
	case c == "vmbackup.start 1":
		g.wg.Go(func() {
			g.event("reset 0 ")
			if g.failScript {
				g.event("req.error 2 Custom quiesce script failed.")
				g.event("req.error 5 'VmBackupOnFreeze' operation failed.")
				g.event("req.done 0 ")
				return
			}
			g.mu.Lock()
			g.frozen = true
			g.mu.Unlock()
			g.event("prov.snapshotCommit 0 ")
		})
		return []byte("OK "), nil
	case c == "vmbackup.snapshotDone":
		g.mu.Lock()
		g.frozen = false
		g.mu.Unlock()
		g.wg.Go(func() { g.event("req.done 0 ") })
		return []byte("OK "), nil
	}
	return []byte("OK "), nil
}

func (g *quiesceGuest) Done() <-chan struct{} { return g.done }
func (g *quiesceGuest) Close() error          { return nil }

// TestVSphereQuiescedSnapshot: CreateSnapshot_Task with quiesce drives
// the guest's vmbackup and creates a quiesced snapshot once the guest
// reported its freeze; a failing freeze script fails the task with
// ApplicationQuiesceFault and leaves no snapshot; without tools the task
// fails with ToolsUnavailable; without quiesce the snapshot is vcsim's.
func TestVSphereQuiescedSnapshot(t *testing.T) {
	c := newCore(t)
	ctx := t.Context()
	v := runFrontEnd(t, c)
	vc, err := vim25.NewClient(ctx, v.model.Service)
	if err != nil {
		t.Fatal(err)
	}
	vm := object.NewVirtualMachine(vc, v.VM())

	snapshot := func(name string, quiesce bool) error {
		tk, err := vm.CreateSnapshot(ctx, name, "", false, quiesce)
		if err != nil {
			return err
		}
		return tk.Wait(ctx)
	}
	if err := snapshot("no-tools", true); !isFault[*types.ToolsUnavailable](err) {
		t.Fatalf("without tools: %v", err)
	}

	g := &quiesceGuest{core: c, done: make(chan struct{})}
	var served sync.WaitGroup
	sctx, endGuest := context.WithCancel(ctx)
	served.Go(func() { c.ServeTCLO(sctx, g) })
	defer func() { endGuest(); close(g.done); served.Wait(); g.wg.Wait() }()
	testutil.WaitFor(t, 10*time.Second, "the guest's channel bound", c.HasToolsChannel)

	if err := snapshot("s1", true); err != nil {
		t.Fatalf("quiesced snapshot: %v", err)
	}
	g.failScript = true
	err = snapshot("s2", true)
	if !isFault[*types.ApplicationQuiesceFault](err) || !strings.Contains(err.Error(), "An error occurred while quiescing the virtual machine") || !strings.Contains(err.Error(), "Custom quiesce script failed.") {
		t.Fatalf("failing script: %v", err)
	}
	if err := snapshot("s3", false); err != nil {
		t.Fatalf("plain snapshot: %v", err)
	}

	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot"}, &mvm); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(l []types.VirtualMachineSnapshotTree) {
		for _, s := range l {
			q := "plain"
			if s.Quiesced {
				q = "quiesced"
			}
			got = append(got, s.Name+" "+q)
			walk(s.ChildSnapshotList)
		}
	}
	walk(mvm.Snapshot.RootSnapshotList)
	if strings.Join(got, ", ") != "s1 quiesced, s3 plain" {
		t.Errorf("snapshots %q", got)
	}
	st := c.State().Quiesce
	if len(st.Snapshots) != 3 || st.Snapshots[1].Events[0].Name != "reset" || st.Snapshots[2].Fault != "ApplicationQuiesceFault" {
		t.Errorf("ctl state quiesce %+v", st)
	}
}

func isFault[F types.BaseMethodFault](err error) bool {
	var te task.Error
	if !errors.As(err, &te) {
		return false
	}
	_, ok := te.Fault().(F)
	return ok
}
