package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// serve is `vmxsim serve`: the simulator on DIR's sockets until a signal.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sf := addSimFlags(fs, "info")
	vms := fs.Int("vms", 0, "serve a fleet of N VMs behind one vSphere front end, each with its own VMX in DIR/vm-0001... (no trap)")
	if err := parseFlags(fs, args, stdout, "vmxsim serve --dir DIR [flags]"); err != nil {
		return 0, err
	}
	if fs.NArg() > 0 {
		return 0, usageError{cmd: "serve", msg: fmt.Sprintf("serve takes no arguments (got %q)", fs.Args())}
	}
	if sf.dir == "" {
		return 0, usageError{cmd: "serve", msg: "serve needs --dir"}
	}
	logger, err := sf.logger(stderr, "serve")
	if err != nil {
		return 0, err
	}
	if *vms > 0 {
		return 0, serveFleet(ctx, sf, *vms, logger)
	}
	s, stop, err := sf.startSim(ctx, logger, nil)
	if err != nil {
		return 0, err
	}
	logger.Info("serving", "dir", sf.dir)
	err = s.Wait() // until ctx ends
	logger.Info("stopped", "dir", sf.dir)
	return 0, errors.Join(err, stop())
}
