package vsphere

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/govmtools/govmtools/vmxsim"
	"github.com/govmtools/govmtools/vmxsim/quiesce"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Quiesced snapshots: CreateSnapshot_Task with quiesce=true and
// CreateSnapshotEx_Task with a quiesce spec on the mirrored VM go to the
// snapshotter, whose task runs the core's quiesce driver (package
// quiesce): the snapshot is taken once the guest reports its file systems
// frozen, and the task fails with the driver's vSphere fault otherwise.
// vcsim's own method would only mark the snapshot quiesced. Snapshots
// without quiesce, and quiesce on a VM that is not powered on (the vim25
// docs: quiesce is then ignored), are left to vcsim.

// snapshotter answers the intercepted snapshot calls.
type snapshotter struct {
	self types.ManagedObjectReference
	v    *FrontEnd
}

func (s *snapshotter) Reference() types.ManagedObjectReference { return s.self }

// CreateSnapshotTask is CreateSnapshot_Task with quiesce=true.
func (s *snapshotter) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	spec := &types.VirtualMachineGuestQuiesceSpec{}
	ref := s.v.quiescedSnapshot(ctx, "createSnapshot", &types.CreateSnapshotEx_Task{Name: req.Name, Description: req.Description, Memory: req.Memory, QuiesceSpec: spec})
	return &methods.CreateSnapshot_TaskBody{Res: &types.CreateSnapshot_TaskResponse{Returnval: ref}}
}

// CreateSnapshotExTask is CreateSnapshotEx_Task with a quiesce spec.
func (s *snapshotter) CreateSnapshotExTask(ctx *simulator.Context, req *types.CreateSnapshotEx_Task) soap.HasFault {
	ref := s.v.quiescedSnapshot(ctx, "createSnapshotEx", req)
	return &methods.CreateSnapshotEx_TaskBody{Res: &types.CreateSnapshotEx_TaskResponse{Returnval: ref}}
}

// wantsQuiesce reports whether a snapshot call asks for quiesce.
func wantsQuiesce(m *simulator.Method) bool {
	switch req := m.Body.(type) {
	case *types.CreateSnapshot_Task:
		return req.Quiesce
	case *types.CreateSnapshotEx_Task:
		return req.QuiesceSpec != nil
	}
	return false
}

// quiescedSnapshot starts the task of a quiesced snapshot and returns
// its reference. The task's entity is the VM, but the task holds no lock
// of it while the guest quiesces: reads of the VM and the mirror go on.
func (v *FrontEnd) quiescedSnapshot(ctx *simulator.Context, name string, req *types.CreateSnapshotEx_Task) types.ManagedObjectReference {
	t := simulator.CreateTask(v.vmObject(), name, nil)
	ctx.Map.Put(t)
	t.Info.Key, t.Info.Task = t.Self.Value, t.Self
	tctx := v.context()
	tctx.Map.AtomicUpdate(tctx, t, []types.PropertyChange{
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.state", Val: types.TaskInfoStateRunning},
	})
	opts := quiesce.Options{Quiesce: true}
	if qs, ok := req.QuiesceSpec.(*types.VirtualMachineGuestQuiesceSpec); ok && qs.Timeout > 0 {
		opts.Timeout = quiesce.Duration(time.Duration(qs.Timeout) * time.Minute)
	}
	v.ops.Go(func() {
		var result types.AnyType
		res, err := v.core.Quiesce().Snapshot(v.opsCtx, opts, func(context.Context) (func(), error) {
			ref, discard, err := v.takeSnapshot(req)
			result = ref
			return discard, err
		})
		v.lg.Info("vsphere: quiesced snapshot", "name", req.Name, "events", len(res.Events), "err", err)
		state, fault := types.TaskInfoStateSuccess, any(nil)
		if err != nil {
			state, result = types.TaskInfoStateError, nil
			fault = taskFault(err, v.vm)
		}
		tctx.Map.AtomicUpdate(tctx, t, []types.PropertyChange{
			{Name: "info.completeTime", Val: time.Now()},
			{Name: "info.state", Val: state},
			{Name: "info.result", Val: result},
			{Name: "info.error", Val: fault},
		})
	})
	return t.Self
}

// takeSnapshot creates the snapshot with vcsim's own method (marked
// quiesced: the guest is frozen now) and returns it and how to remove it.
func (v *FrontEnd) takeSnapshot(req *types.CreateSnapshotEx_Task) (types.ManagedObjectReference, func(), error) {
	sctx := v.context()
	body := v.vmObject().CreateSnapshotExTask(sctx, req).(*methods.CreateSnapshotEx_TaskBody)
	ref, err := waitTask(sctx, body.Res.Returnval)
	if err != nil {
		return types.ManagedObjectReference{}, nil, err
	}
	snap, _ := ref.(types.ManagedObjectReference)
	discard := func() {
		dctx := v.context()
		s, ok := dctx.Map.Get(snap).(*simulator.VirtualMachineSnapshot)
		if !ok {
			return
		}
		rb := s.RemoveSnapshotTask(dctx, &types.RemoveSnapshot_Task{This: snap}).(*methods.RemoveSnapshot_TaskBody)
		if _, err := waitTask(dctx, rb.Res.Returnval); err != nil {
			v.lg.Warn("vsphere: rolling back the snapshot failed", "err", err)
		}
	}
	return snap, discard, nil
}

// waitTask waits for a vcsim task and returns its result or error.
func waitTask(ctx *simulator.Context, ref types.ManagedObjectReference) (types.AnyType, error) {
	t, ok := ctx.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, fmt.Errorf("vsphere: no task %v", ref)
	}
	t.Wait()
	var info types.TaskInfo
	ctx.Map.WithLock(&simulator.Context{}, t, func() { info = t.Info })
	if info.Error != nil {
		return nil, fmt.Errorf("vsphere: %s: %s", info.Name, info.Error.LocalizedMessage)
	}
	return info.Result, nil
}

// taskFault is the task error vSphere reports for a failed quiesce.
func taskFault(err error, vm types.ManagedObjectReference) types.LocalizedMethodFault {
	var fe *quiesce.Error
	if !errors.As(err, &fe) {
		return types.LocalizedMethodFault{Fault: new(types.SnapshotFault), LocalizedMessage: err.Error()}
	}
	var f types.BaseMethodFault
	switch fe.Fault {
	case quiesce.FaultApplication:
		f = new(types.ApplicationQuiesceFault)
	case quiesce.FaultFilesystem:
		f = new(types.FilesystemQuiesceFault)
	case quiesce.FaultTimedout:
		f = new(types.Timedout)
	case quiesce.FaultToolsDown:
		f = new(types.ToolsUnavailable)
	case quiesce.FaultInProgress:
		f = &types.TaskInProgress{Task: vm}
	case quiesce.FaultCanceled:
		f = new(types.RequestCanceled)
	default:
		f = new(types.SnapshotFault)
	}
	return types.LocalizedMethodFault{Fault: f, LocalizedMessage: fe.Message}
}

// interceptSnapshot sends quiesced snapshot calls on the powered-on VM
// to the snapshotter.
func (v *FrontEnd) interceptSnapshot(m *simulator.Method) {
	if !wantsQuiesce(m) {
		return
	}
	if v.core.PowerState() == vmxsim.PoweredOn {
		m.This = v.snapper
		return
	}
	// Not powered on: no guest to quiesce, and the snapshot is not
	// marked quiesced.
	switch req := m.Body.(type) {
	case *types.CreateSnapshot_Task:
		req.Quiesce = false
	case *types.CreateSnapshotEx_Task:
		req.QuiesceSpec = nil
	}
}
