package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/govmtools/govmtools/vmxsim/sim"
)

// serveFleet is `vmxsim serve --vms N`: N VMs, each with its own
// simulated VMX in DIR/vm-NNNN, behind one vSphere front end, until a
// signal.
func serveFleet(ctx context.Context, sf *simFlags, n int, logger *slog.Logger) error {
	if sf.trace != "" {
		return usageError{cmd: "serve", msg: "--trace cannot be used with --vms"}
	}
	opts, closeFiles, err := sf.options(logger)
	if err != nil {
		return err
	}
	f, err := sim.NewFleet(sim.FleetOptions{Dir: sf.dir, VMs: n, VM: opts, VSphere: opts.VSphere})
	if err == nil {
		if err = f.Start(ctx); err != nil {
			f.Close()
		}
	}
	if err != nil {
		closeFiles()
		return err
	}
	if f.VSphere != nil {
		logger.Info("vSphere front end", "url", f.VSphere.URL().String(), "vms", n)
	}
	logger.Info("serving a fleet", "dir", sf.dir, "vms", n)
	err = f.Wait() // until ctx ends
	logger.Info("stopped", "dir", sf.dir)
	return errors.Join(err, f.Close(), closeFiles())
}
